"""`panda report`: the dataset report (HTML) of everything in the catalog, without running Dagster.

Reads the catalog under PANDA_HOME and writes one HTML page with every evaluation across shards:
statistics, teacher win rates, caption metrics against references, plots, sample clips with key frames and
their candidate and selected captions, and the retrieval benchmark. Shards whose eval_metrics asset was
never materialized are evaluated on the fly. Same page as the `dataset_report` asset.
"""

from __future__ import annotations

import argparse
import sys

from panda_dagster.commands.common import add_command, fail, panda_resource


def register(subparsers) -> None:
    from panda_dagster.lib.evaluation.report_config import REPORT_DEFAULTS  # light: no pandas at CLI start

    p = add_command(subparsers, "report", run, doc=__doc__,
                    summary="write the dataset report (one self-contained HTML page) under PANDA_HOME")
    p.add_argument("--out", default=None, help="output file (default PANDA_HOME/reports/dataset_report.html)")
    p.add_argument("--shard", action="append", default=None, dest="shards",
                   help="only this shard (repeatable; default: every shard in the catalog)")
    p.add_argument("--samples", type=int, default=REPORT_DEFAULTS.samples_per_shard,
                   help=f"sample clips per shard (default {REPORT_DEFAULTS.samples_per_shard})")


def run(args: argparse.Namespace) -> int:
    from panda_dagster.lib.evaluation.catalog_io import catalog_shards
    from panda_dagster.lib.evaluation.report import write_report
    from panda_dagster.lib.models.profiles import TINY_LABEL

    if args.samples < 0:
        return fail("--samples must be >= 0")
    panda = panda_resource()
    catalog, storage = panda.catalog(), panda.storage()
    if not catalog.home.exists():
        return fail(f"no data under {catalog.home}: run `panda ingest` and materialize a shard first")
    known = catalog_shards(catalog)
    if args.shards:
        unknown = sorted(set(args.shards) - set(known))
        if unknown:
            return fail(f"unknown shard(s) {', '.join(unknown)}; the catalog has: {', '.join(known) or 'none'}")
    elif not known:
        print("panda report: the catalog has no shard yet; the report says so", file=sys.stderr)
    path = write_report(catalog, storage, out_path=args.out, shards=args.shards, n_samples=args.samples)
    html = path.read_text(encoding="utf-8")
    if TINY_LABEL in html:
        print(f"panda report: {TINY_LABEL}", file=sys.stderr)
    elif "RANDOM weights" in html:  # e.g. `offline`: trained embedders and ASR, random captioners and scorer
        print("panda report: some models had RANDOM weights (the report's banner lists each model)", file=sys.stderr)
    print(path)
    return 0
