"""The evaluation assets materialized through Dagster, and `panda report`."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, materialize

from panda_dagster.cli import main
from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.evaluation.assets import dataset_report, eval_metrics, retrieval_benchmark
from panda_dagster.lib.evaluation.records import ALL_SHARDS
from panda_dagster.lib.models.profiles import TINY_LABEL


def _instance(shards):
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, shards)
    return instance


def test_eval_metrics_asset_is_idempotent(populated):
    catalog, home = populated["catalog"], populated["catalog"].home
    instance = _instance(["train-a"])
    resources = {"panda": PandaResource(home=str(home))}
    run_config = {"ops": {"eval_metrics": {"config": {"reference_metrics": False}}}}
    for _ in range(2):
        result = materialize([eval_metrics], partition_key="train-a", instance=instance, resources=resources,
                             run_config=run_config)
        assert result.success
    rows = catalog.query("SELECT metric, value FROM eval_metrics WHERE shard = 'train-a'")
    assert rows["metric"].is_unique
    assert rows.set_index("metric").loc["clips.count", "value"] == 120
    meta = result.asset_materializations_for_node("eval_metrics")[0].metadata
    assert meta["n_clips"].value == 120
    assert meta["models"].value == TINY_LABEL
    assert meta["plot_clip_durations"].value.startswith("![clip_durations](data:image/png;base64,")
    plots = populated["storage"].list("shards/train-a/eval/")
    assert "shards/train-a/eval/clip_durations.png" in plots


@pytest.mark.slow
def test_retrieval_benchmark_and_report_assets(populated, tmp_path, capsys):
    """Tiny open_clip features (random weights): checks the wiring, not the numbers."""
    from panda_dagster.lib.evaluation.catalog_io import load_shard_tables
    from panda_dagster.lib.evaluation.shard_eval import evaluate_shard

    catalog = populated["catalog"]
    home = catalog.home
    for shard in ("train-a", "evalset"):  # without reference metrics: the METEOR JVM is tested elsewhere
        catalog.replace_shard("eval_metrics", shard, evaluate_shard(load_shard_tables(catalog, shard), False).records())
    resources = {"panda": PandaResource(home=str(home))}
    run_config = {"ops": {"retrieval_benchmark": {"config": {"profile": "tiny", "epochs": 5, "embed_dim": 32,
                                                             "batch_size": 32}}}}
    result = materialize([retrieval_benchmark], instance=_instance([]), resources=resources, run_config=run_config)
    assert result.success
    rows = populated["catalog"].read_shard("retrieval_results", ALL_SHARDS)
    assert set(rows["train_text"]) == {"selected", "narration", "teacher:tinyblip"}
    assert set(rows["eval_set"]) == {"heldout", "references:evalset"}
    assert (rows["models_label"] == TINY_LABEL).all()

    result = materialize([dataset_report], instance=_instance([]), resources=resources,
                         run_config={"ops": {"dataset_report": {"config": {"samples_per_shard": 2}}}})
    assert result.success
    meta = result.asset_materializations_for_node("dataset_report")[0].metadata
    assert meta["tiny_models"].value is True
    report = home / "reports" / "dataset_report.html"
    assert report.is_file() and "Downstream: HowTo100M" in report.read_text()
    assert populated["storage"].exists("reports/dataset_report.html")

    out = tmp_path / "only-train.html"
    assert main(["report", "--shard", "train-a", "--out", str(out), "--samples", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    html = out.read_text()
    assert "Shard train-a" in html and "Shard evalset" not in html


def test_report_cli_rejects_unknown_shard(populated, capsys):
    assert main(["report", "--shard", "nope"]) == 2
    assert "unknown shard" in capsys.readouterr().err
