from dagster import Definitions

from panda_dagster.common.stub import not_implemented_asset

defs = Definitions(
    assets=[not_implemented_asset("clips", "raw_videos", "clips", "Semantics-aware clips (not implemented yet)")]
)
