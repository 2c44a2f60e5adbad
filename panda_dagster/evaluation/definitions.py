from dagster import Definitions

from panda_dagster.common.stub import not_implemented_asset

defs = Definitions(
    assets=[not_implemented_asset("eval_metrics", "selected_captions", "evaluation", "Evaluation (not implemented yet)")]
)
