"""Checks of `selected_captions`, per shard (blocking: evaluation and the dataset export read one caption
per clip, taken from its teachers, with a usable score)."""

from panda_dagster.common.checks import shard_check_specs
from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.checks import (
    CheckOutcome,
    check_captions_not_empty,
    check_scores_finite,
    check_selected_captions,
)

SELECTED_CAPTIONS_CHECK_SPECS = shard_check_specs("selected_captions", blocking={
    "one_selected_caption_from_candidates": "Every clip with candidate captions has exactly one selected caption, "
    "and it is one of its candidates (teacher and text); clips quarantined by selection are exempt",
    "captions_not_empty": "No selected caption is empty or whitespace",
    "scores_finite": "matching_score, margin_to_second and every caption_scores.score are finite",
})


def evaluate_selection_checks(catalog: Catalog, shard: str, stage: str, selected: set[str]) -> list[CheckOutcome]:
    chosen = catalog.read_shard("selected_captions", shard)
    outcomes = []
    if "one_selected_caption_from_candidates" in selected:
        quarantine = catalog.read_shard("quarantine", shard)
        mine = quarantine[quarantine["stage"] == stage]
        exempt = [uri[len("clip:"):] for uri in mine["uri"] if str(uri).startswith("clip:")]
        outcomes.append(check_selected_captions(chosen, catalog.read_shard("teacher_captions", shard),
                                                catalog.read_shard("clips", shard), exempt))
    if "captions_not_empty" in selected:
        outcomes.append(check_captions_not_empty(chosen, key_columns=("clip_id",)))
    if "scores_finite" in selected:
        scores = catalog.read_shard("caption_scores", shard)
        outcomes.append(check_scores_finite([
            ("selected_captions", chosen, ["matching_score", "margin_to_second"], "clip_id"),
            ("caption_scores", scores, ["score"], "clip_id"),
        ]))
    return outcomes
