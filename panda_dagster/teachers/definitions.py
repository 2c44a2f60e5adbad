from dagster import Definitions

from panda_dagster.common.stub import not_implemented_asset

defs = Definitions(
    assets=[not_implemented_asset("teacher_captions", "clips", "captions", "Teacher captions (not implemented yet)")]
)
