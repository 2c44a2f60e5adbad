"""Checks of `raw_videos`, per shard: a warning when too many of a shard's videos were dropped (a broken
source, an expired URL list, a codec the decoder lacks); the shard's good videos still flow on."""

from panda_dagster.common.checks import shard_check_specs
from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.checks import CheckOutcome, check_quarantine_share, max_quarantine_share
from panda_dagster.lib.intake import STAGE

QUARANTINE_SHARE = "quarantine_share_below_bar"

RAW_VIDEOS_CHECK_SPECS = shard_check_specs("raw_videos", blocking={}, warning={
    QUARANTINE_SHARE: "Share of the shard's entries dropped into quarantine at raw_videos is at most the bar "
    "(config max_quarantine_share, else $PANDA_MAX_QUARANTINE_SHARE, else 20 %); WARN, not blocking",
})
WARNING_CHECKS = (QUARANTINE_SHARE,)


def evaluate_raw_videos_checks(catalog: Catalog, shard: str, *, max_share: float | None,
                               selected: set[str]) -> list[CheckOutcome]:
    if QUARANTINE_SHARE not in selected:
        return []
    videos = catalog.read_shard("videos", shard)
    quarantine = catalog.read_shard("quarantine", shard)
    return [check_quarantine_share(videos, quarantine, STAGE, max_quarantine_share(max_share))]
