"""The selection and evaluation stages' Dagster run config is generated from their library configs: same
fields, same defaults, the library's help texts, and `to_lib()` hands the values to the library."""

from __future__ import annotations

import dataclasses

import pytest

from panda_dagster.evaluation.assets import DatasetReportConfig, EvalMetricsConfig, RetrievalBenchmarkConfig
from panda_dagster.lib.evaluation.benchmark import BenchmarkConfig
from panda_dagster.lib.evaluation.report_config import ReportConfig
from panda_dagster.lib.evaluation.shard_eval import EvalConfig
from panda_dagster.lib.selection.finetune import FinetuneConfig
from panda_dagster.lib.selection.shard import SelectionConfig
from panda_dagster.selection.assets import SelectedCaptionsConfig, SelectionModelConfig


@pytest.mark.parametrize("dagster_config, lib_config", [
    (SelectedCaptionsConfig, SelectionConfig), (SelectionModelConfig, FinetuneConfig), (EvalMetricsConfig, EvalConfig),
    (RetrievalBenchmarkConfig, BenchmarkConfig), (DatasetReportConfig, ReportConfig)])
def test_dagster_config_mirrors_the_library_config(dagster_config, lib_config):
    fields = {f.name: f for f in dataclasses.fields(lib_config)}
    assert set(fields) <= set(dagster_config.model_fields)
    for name, field in fields.items():
        assert dagster_config.model_fields[name].description == field.metadata["help"], name
    assert dagster_config().to_lib() == lib_config()  # the same defaults


def test_run_config_values_reach_the_library():
    benchmark = RetrievalBenchmarkConfig(fixed_teacher="blip", joint={"epochs": 3, "embed_dim": 8}).to_lib()
    assert benchmark.fixed_teacher == "blip" and benchmark.joint.epochs == 3 and benchmark.joint.embed_dim == 8
    assert benchmark.joint.margin == BenchmarkConfig().joint.margin
    selection = SelectedCaptionsConfig(min_score=None, max_clips_per_video=3).to_lib()
    assert selection.policy.min_score is None and selection.policy.max_clips_per_video == 3
    finetune = SelectionModelConfig(epochs=2, min_labels=5)
    assert finetune.to_lib() == dataclasses.replace(FinetuneConfig(), epochs=2) and finetune.min_labels == 5


def test_report_command_takes_its_samples_default_from_the_report_config(monkeypatch):
    from panda_dagster.cli import build_parser
    from panda_dagster.lib.evaluation import report_config

    args = build_parser().parse_args(["report"])
    assert args.samples == ReportConfig().samples_per_shard == DatasetReportConfig().to_lib().samples_per_shard
    # One source: change the library default and the command follows.
    monkeypatch.setattr(report_config, "REPORT_DEFAULTS", ReportConfig(samples_per_shard=7))
    assert build_parser().parse_args(["report"]).samples == 7
