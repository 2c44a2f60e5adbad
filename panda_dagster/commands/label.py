"""`panda label`: human caption choices for fine-tuning the selection model.

Human labels train the `selection_model` asset: export a self-contained HTML page for a shard, pick the
best caption per clip (candidates shuffled, teachers hidden) or 'all bad', save the CSV, import it, then
materialize `selection_model` and re-materialize `selected_captions`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from panda_dagster.commands.common import add_command, fail, panda_resource


def register(subparsers) -> None:
    p = add_command(subparsers, "label", None, doc=__doc__,
                    summary="label the best caption of clips (export a page, import the CSV it saves)")
    sub = p.add_subparsers(dest="label_command", required=True, metavar="ACTION")

    export = sub.add_parser("export", help="write an HTML labelling page for clips of a shard")
    export.add_argument("--shard", required=True, help="shard key, e.g. shard-00001")
    export.add_argument("--n", type=int, default=100, help="clips to put on the page (default 100; 0 = all)")
    export.add_argument("--out", type=Path, help="output file (default $PANDA_HOME/labels/<shard>_<page>.html)")
    export.add_argument("--seed", type=int, default=0, help="which random sample of clips (default 0)")
    export.add_argument("--include-labelled", action="store_true", help="also show clips labelled before")
    export.set_defaults(handler=run_export)

    imp = sub.add_parser("import", help="store a label CSV in the catalog table caption_preferences")
    imp.add_argument("file", type=Path, help="CSV saved by the page, or any CSV with clip_id and one of "
                     "choice / chosen_caption / chosen_teacher / all_bad")
    imp.add_argument("--annotator", help="annotator name for rows that do not carry one")
    imp.set_defaults(handler=run_import)

    status = sub.add_parser("status", help="labels per shard and the selection models trained on them")
    status.set_defaults(handler=run_status)


def run_export(args: argparse.Namespace) -> int:
    from panda_dagster.lib.selection.inputs import load_shard_clips
    from panda_dagster.lib.selection.labels import export_label_page, sample_for_labelling
    from panda_dagster.lib.storage import artifact_reader

    resource = panda_resource()
    catalog, storage = resource.catalog(), resource.storage()
    clips = load_shard_clips(catalog, args.shard)
    if not clips:
        return fail(f"shard {args.shard!r} has no clips in the catalog (materialize `clips` and `teacher_captions`)")
    labelled: set[str] = set()
    if not args.include_labelled:
        labelled = set(catalog.query("SELECT DISTINCT clip_id FROM caption_preferences")["clip_id"])
    sample = sample_for_labelling(clips, args.n or None, args.seed, labelled)
    if not sample:
        return fail(f"shard {args.shard!r}: no clip with two or more candidate captions and key frames left to label")
    out = args.out or resource.home_path / "labels" / f"{args.shard}_seed{args.seed}.html"
    page = export_label_page(sample, artifact_reader(storage), out, title=f"Best caption — {args.shard}",
                             seed=args.seed)
    for clip_id, reason in page.skipped:
        print(f"skipped clip {clip_id}: {reason}", file=sys.stderr)
    print(f"{page.n_clips} clips, {page.n_candidates} candidate captions; open in a browser, label, "
          f"'Save CSV', then `panda label import <file>.csv`", file=sys.stderr)
    print(page.path)
    return 0


def run_import(args: argparse.Namespace) -> int:
    from panda_dagster.lib.selection.labels import import_labels

    if not args.file.is_file():
        return fail(f"no such file: {args.file}")
    try:
        result = import_labels(panda_resource().catalog(), args.file, args.annotator)
    except (ValueError, UnicodeDecodeError) as exc:
        return fail(f"{args.file}: {exc}")
    for problem in result.problems:
        print(f"{args.file.name}:{problem.line}: clip {problem.clip_id or '?'}: {problem.reason}", file=sys.stderr)
    print(f"imported {len(result.stored)} of {result.n_rows} labels as batch {result.batch} "
          f"({result.n_all_bad} 'all bad', {len(result.problems)} rejected)")
    return 0 if result.stored or not result.problems else 1


def run_status(args: argparse.Namespace) -> int:
    from panda_dagster.lib.selection.finetune import list_selection_models

    resource = panda_resource()
    counts = resource.catalog().query(
        "SELECT shard, count(*) AS labels, count(DISTINCT clip_id) AS clips, sum(all_bad::INT) AS all_bad, "
        "count(DISTINCT annotator) AS annotators FROM caption_preferences GROUP BY shard ORDER BY shard"
    )
    if counts.empty:
        print("no labels yet: `panda label export --shard <shard>`")
    else:
        print(counts.to_string(index=False))
    models = list_selection_models(resource.storage())
    for info in models:
        print(f"selection model {info.version} [{info.profile}]: {info.n_labels} labels, validation selection "
              f"accuracy {info.base_val_accuracy} -> {info.tuned_val_accuracy} (chance {info.chance_val_accuracy})")
    if not models:
        print("no selection model yet: materialize the `selection_model` asset after importing labels")
    return 0
