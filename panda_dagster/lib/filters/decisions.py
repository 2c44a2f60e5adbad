"""The clip filters' decisions as later stages read them (table `clip_filters`).

A shard without `clip_filters` rows (the filters did not run, or are not part of this deployment), or a
catalog that does not declare the table, drops nothing: every clip is kept.
"""

from __future__ import annotations

TABLE = "clip_filters"


def dropped_reasons(catalog, shard: str) -> dict[str, list[str]]:
    """clip_id -> reasons, for the clips of `shard` the clip filters dropped (keep=False)."""
    if TABLE not in catalog.tables:
        return {}
    return {row.clip_id: list(row.reasons or []) for row in catalog.rows(TABLE, shard) if not row.keep}


def dropped_clip_ids(catalog, shard: str) -> set[str]:
    """The clips of `shard` the clip filters dropped."""
    return set(dropped_reasons(catalog, shard))
