"""Stage: evaluation (per-shard metrics, the downstream retrieval benchmark, the dataset report)."""
from dagster import Definitions

from panda_dagster.evaluation.assets import dataset_report, eval_metrics, retrieval_benchmark
from panda_dagster.evaluation.resources import EvaluationModelsResource

defs = Definitions(
    assets=[eval_metrics, retrieval_benchmark, dataset_report],
    resources={"evaluation_models": EvaluationModelsResource()},
)
