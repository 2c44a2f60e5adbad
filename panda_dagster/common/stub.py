"""Assets whose stage is not built yet: they exist in the graph and fail loudly, never fake output."""

from __future__ import annotations

from dagster import AssetsDefinition, Failure, asset

from panda_dagster.common.partitions import video_shards

NOT_IMPLEMENTED_TAG = "panda/not_implemented"


def not_implemented_asset(name: str, upstream: str, group: str, description: str) -> AssetsDefinition:
    @asset(
        name=name,
        deps=[upstream],
        partitions_def=video_shards,
        group_name=group,
        description=description,
        tags={NOT_IMPLEMENTED_TAG: "true"},
    )
    def _stub() -> None:
        raise Failure(f"{name} is not implemented yet", allow_retries=False)

    return _stub
