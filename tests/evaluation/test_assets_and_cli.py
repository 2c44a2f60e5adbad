"""The evaluation assets materialized through Dagster, and `panda report`."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, materialize

from panda_dagster.cli import main
from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.evaluation.assets import dataset_report, eval_metrics, retrieval_benchmark
from panda_dagster.evaluation.resources import EvaluationModelsResource
from panda_dagster.lib.evaluation.records import ALL_SHARDS
from panda_dagster.lib.models.profiles import TINY_LABEL


def _instance(shards):
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, shards)
    return instance


def test_eval_metrics_asset_is_idempotent(populated):
    catalog, home = populated["catalog"], populated["catalog"].home
    instance = _instance(["train-a"])
    resources = {"panda": PandaResource(home=str(home)), "evaluation_models": EvaluationModelsResource(device="cpu")}
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
    from panda_dagster.lib.evaluation.shard_eval import EvalConfig, evaluate_shard

    catalog = populated["catalog"]
    home = catalog.home
    for shard in ("train-a", "evalset"):  # without reference metrics: the METEOR JVM is tested elsewhere
        catalog.replace_shard("eval_metrics", shard,
                              evaluate_shard(load_shard_tables(catalog, shard), EvalConfig(reference_metrics=False)).records())
    resources = {"panda": PandaResource(home=str(home)),
                 "evaluation_models": EvaluationModelsResource(profile="tiny", device="cpu")}
    run_config = {"ops": {"retrieval_benchmark": {"config": {"joint": {"epochs": 5, "embed_dim": 32,
                                                                       "batch_size": 32}}}}}
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


def test_retrieval_benchmark_text_side_uses_the_offline_sentence_embedder(populated):
    """`offline` profile: key frames through its frame embedder (the packaged trained EfficientNet-Lite0, the
    HowTo100M video side), reusing the rows `clips` wrote with it; texts through the packaged MiniLM."""
    import json

    from panda_dagster.lib.evaluation.benchmark import pil_loader
    from panda_dagster.lib.models.embedders import load_image_embedder
    from panda_dagster.lib.models.keyframes import keyframe_embeddings
    from panda_dagster.lib.storage import artifact_reader

    catalog, storage = populated["catalog"], populated["storage"]
    # `clips` in offline embeds key frames with its clip embedder (`auto`: the same EfficientNet-Lite0): do that
    # for one shard, so the benchmark must reuse those 20 rows and embed only the other shard's 120 clips.
    frame_embedder = load_image_embedder("auto", "offline", "cpu")
    rows, computed = keyframe_embeddings(catalog.rows("clips", "evalset"), frame_embedder, [],
                                         pil_loader(artifact_reader(storage)))
    assert computed == 20
    catalog.replace_shard("keyframe_embeddings", "evalset", rows, part=frame_embedder.spec.model_id)

    resources = {"panda": PandaResource(home=str(catalog.home)),
                 "evaluation_models": EvaluationModelsResource(profile="offline", device="cpu")}
    run_config = {"ops": {"retrieval_benchmark": {"config": {"joint": {"epochs": 2, "embed_dim": 16,
                                                                       "batch_size": 32}}}}}
    result = materialize([retrieval_benchmark], instance=_instance([]), resources=resources, run_config=run_config)
    assert result.success
    meta = result.asset_materializations_for_node("retrieval_benchmark")[0].metadata
    # Both sides are trained in offline, and say so: video EfficientNet-Lite0, text MiniLM.
    assert "all-MiniLM-L6-v2" in meta["text_model"].value
    assert meta["models"].value == frame_embedder.label and frame_embedder.trained
    assert meta["models"].value.startswith("timm/tf_efficientnet_lite0") and TINY_LABEL not in meta["models"].value
    assert meta["keyframe_embeddings_reused"].value == 20  # the rows clips wrote (same model id + revision)
    assert meta["keyframe_embeddings_computed"].value == 120  # the other shard's clips, once
    rows = catalog.read_shard("retrieval_results", ALL_SHARDS)
    assert (rows["models_label"] == frame_embedder.label).all()
    feature_models = json.loads(rows["config_json"].iloc[0])["feature_models"]
    assert feature_models["text"].startswith("sentence-transformers/all-MiniLM-L6-v2")
    assert feature_models["video"].startswith(f"{frame_embedder.label}: key-frame embeddings, max-pooled")
    # Trained text features are cached per text model (next to the catalog).
    assert list((catalog.home / "cache" / "eval_features").glob("*.npz"))
    # A second run embeds nothing: every clip's row is now in the catalog.
    result = materialize([retrieval_benchmark], instance=_instance([]), resources=resources, run_config=run_config)
    meta = result.asset_materializations_for_node("retrieval_benchmark")[0].metadata
    assert (meta["keyframe_embeddings_reused"].value, meta["keyframe_embeddings_computed"].value) == (140, 0)
