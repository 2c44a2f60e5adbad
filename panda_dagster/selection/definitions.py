from dagster import Definitions

from panda_dagster.common.stub import not_implemented_asset

defs = Definitions(
    assets=[
        not_implemented_asset(
            "selected_captions", "teacher_captions", "captions", "Selected captions (not implemented yet)"
        )
    ]
)
