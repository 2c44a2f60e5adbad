"""Checks of the `clips` asset, evaluated per shard right after it is written (blocking: teachers would
caption frames outside the video, clips of the wrong length or the same frames twice)."""

from panda_dagster.common.checks import shard_check_specs
from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.checks import CheckOutcome, check_clip_bounds, check_clip_overlaps, check_scores_finite

CLIPS_CHECK_SPECS = shard_check_specs("clips", blocking={
    "clips_within_video_and_length": "Every clip lies inside the decodable part of its video (and the first "
    "max_video_s seconds); shot/stitched clips last between min_clip_s and max_clip_s (± one frame); narration "
    "clips have a positive length",
    "clips_do_not_overlap": "No two visual clips (or two narration clips) of a video share a frame; clip ids unique",
    "scores_finite": "split_quality is finite wherever it is set",
})


def evaluate_clips_checks(catalog: Catalog, shard: str, *, min_clip_s: float, max_clip_s: float,
                          max_video_s: float | None, selected: set[str]) -> list[CheckOutcome]:
    clips = catalog.read_shard("clips", shard)
    outcomes = []
    if "clips_within_video_and_length" in selected:
        videos = catalog.read_shard("videos", shard)
        outcomes.append(check_clip_bounds(clips, videos, min_clip_s=min_clip_s, max_clip_s=max_clip_s,
                                          max_video_s=max_video_s))
    if "clips_do_not_overlap" in selected:
        outcomes.append(check_clip_overlaps(clips))
    if "scores_finite" in selected:
        outcomes.append(check_scores_finite([("clips", clips, ["split_quality"], "clip_id")],
                                            nullable=["clips.split_quality"]))
    return outcomes
