"""`panda export`: the curated dataset out of the catalog, in the formats training code reads.

Exports every clip that has a selected caption (with its `accepted` flag; quarantined clips and clips
dropped by clip filters never) into --out, replacing an earlier export there as a whole (a failed export
leaves the previous one intact). Formats: panda70m-csv (panda70m.csv, the released Panda-70M metadata
layout: one row per video, per-clip lists; `panda ingest` reads it back), webdataset (webdataset/*.tar of
KEY.mp4/.txt/.json), parquet (parquet/<shard>.parquet), jsonl (clips.jsonl). Same export as the
`dataset_export` asset.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from panda_dagster.commands.common import add_command, fail, panda_resource

def _csv_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def register(subparsers) -> None:
    p = add_command(subparsers, "export", run, doc=__doc__,
                    summary="write the curated dataset (Panda-70M CSV, WebDataset, Parquet, JSONL) plus DATASET_CARD.md")
    p.add_argument("--format", dest="formats", action="append", type=_csv_list, required=True,
                   help="export format, repeatable or comma-separated: the names in lib/export/registry.py "
                   "(panda70m-csv, webdataset, parquet, jsonl); an unknown name lists the known ones")
    p.add_argument("--out", required=True, help="export folder (created; replaced when it holds an earlier export)")
    p.add_argument("--shards", type=_csv_list, default=[], help="only these shards, comma-separated "
                   "(default: every shard with selected captions)")
    p.add_argument("--accepted-only", action="store_true", help="only clips whose caption was accepted")
    p.add_argument("--min-score", type=float, default=None, help="only clips with matching_score >= this")
    # WebDataset flags: defaults and help come from the options dataclass (None = its default).
    from panda_dagster.lib.export.base import CUT_MODES, WebDatasetOptions

    wds_help = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(WebDatasetOptions)}
    p.add_argument("--cut-mode", choices=CUT_MODES, default=None, help=f"webdataset: {wds_help['cut_mode']}")
    p.add_argument("--samples-per-shard", type=int, default=None, help=f"webdataset: {wds_help['samples_per_shard']}")
    p.add_argument("--max-shard-bytes", type=int, default=None, help=f"webdataset: {wds_help['max_shard_bytes']}")
    p.add_argument("--bucket-by", type=_csv_list, default=None, help=f"webdataset: {wds_help['bucket_by']}")


def run(args: argparse.Namespace) -> int:
    from panda_dagster.lib.export.base import ExportOptions, WebDatasetOptions
    from panda_dagster.lib.export.rows import ExportSelectionError
    from panda_dagster.lib.export.run import ExportError, export_dataset

    try:
        options = ExportOptions(
            formats=[f for group in args.formats for f in group], out_dir=args.out, shards=args.shards,
            accepted_only=args.accepted_only, min_score=args.min_score,
            webdataset=WebDatasetOptions(**{k: v for k, v in (
                ("cut_mode", args.cut_mode), ("samples_per_shard", args.samples_per_shard),
                ("max_shard_bytes", args.max_shard_bytes), ("bucket_by", args.bucket_by)) if v is not None}))
    except ValueError as exc:
        return fail(str(exc))
    panda = panda_resource()
    catalog = panda.catalog()
    if not catalog.home.exists():
        return fail(f"no data under {catalog.home}: run `panda ingest` and materialize a shard first")
    try:
        result = export_dataset(catalog, options, cache_dir=panda.home_path / "cache")
    except (ExportError, ExportSelectionError) as exc:
        return fail(str(exc))
    for output in result.outputs:
        notes = f" ({'; '.join(output.notes)})" if output.notes else ""
        print(f"panda export: {output.format}: {output.n_rows} clips, {len(output.files)} files, "
              f"{output.n_bytes} bytes in {output.seconds:.1f} s{notes}", file=sys.stderr)
    for reason, count in sorted(result.selection.excluded.items()):
        print(f"panda export: left out {count} clips: {reason}", file=sys.stderr)
    if result.tiny_models:
        print("panda export: WARNING: captions/scores come from TINY random-weight models (see DATASET_CARD.md)",
              file=sys.stderr)
    print(result.out_dir)
    return 0
