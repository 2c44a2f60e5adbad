"""Checks of `teacher_captions`, per shard (blocking: selection would pick among broken candidates)."""

from panda_dagster.common.checks import shard_check_specs
from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.checks import CheckOutcome, check_captions_not_empty

TEACHER_CAPTIONS_CHECK_SPECS = shard_check_specs("teacher_captions", blocking={
    "captions_not_empty": "No teacher caption is empty or whitespace (empty output is a teacher_failures row)",
})


def evaluate_teacher_checks(catalog: Catalog, shard: str, selected: set[str]) -> list[CheckOutcome]:
    if "captions_not_empty" not in selected:
        return []
    captions = catalog.read_shard("teacher_captions", shard)
    return [check_captions_not_empty(captions, key_columns=("clip_id", "teacher"))]
