"""`eval_metrics` on the shard runner: a range of shards in one run, its checks per shard, what it reports
about the clip filters' decisions and duplicate captions, and the report's dropped-clip examples."""

from __future__ import annotations

import math
import re

import pytest
from dagster import AssetCheckSeverity, DagsterInstance, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.evaluation.assets import eval_metrics
from panda_dagster.evaluation.resources import EvaluationModelsResource
from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.evaluation.checks import (
    check_clip_count,
    check_evaluation_complete,
    check_metrics_finite,
)
from panda_dagster.lib.evaluation.duplicates import exact_duplicate_metrics, near_duplicate_metrics
from panda_dagster.lib.evaluation.records import EvalMetricRecord
from panda_dagster.lib.filters.records import ClipFilterRecord

NO_REFERENCES = {"ops": {"eval_metrics": {"config": {"reference_metrics": False}}}}
SCORES = ("motion_camera", "motion_object", "motion_jitter", "changing_share", "text_area", "nsfw", "sharpness",
          "brightness", "blown_share", "short_side", "duplicate_distance", "duplicate_cosine")


def _decision(clip: dict, reasons: list[str]) -> ClipFilterRecord:
    return ClipFilterRecord(clip_id=clip["clip_id"], video_id=clip["video_id"], shard=clip["shard"],
                            keep=not reasons, reasons=reasons, duplicate_of=None, text=None, duration_s=4.0,
                            phashes=[], filters=["still", "quality"], **dict.fromkeys(SCORES))


def _filter_train_shard(catalog: Catalog) -> dict[str, list[str]]:
    """train-a: 3 clips dropped as `still`, 2 as `dark`, one of them for both reasons."""
    clips = catalog.read_shard("clips", "train-a").sort_values("clip_id").to_dict("records")
    why = {0: ["still"], 1: ["still"], 2: ["still", "dark"], 3: ["dark"]}
    catalog.replace_shard("clip_filters", "train-a", [_decision(c, why.get(i, [])) for i, c in enumerate(clips)])
    return {clips[i]["clip_id"]: r for i, r in why.items()}


def _evaluations(result) -> dict[tuple[str, str | None], object]:
    return {(e.event_specific_data.check_name, e.event_specific_data.partition): e.event_specific_data
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def _materialize_range(home, shards, **kwargs):
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, shards)
    resources = {"panda": PandaResource(home=str(home)), "evaluation_models": EvaluationModelsResource(device="cpu")}
    tags = {ASSET_PARTITION_RANGE_START_TAG: shards[0], ASSET_PARTITION_RANGE_END_TAG: shards[-1]}
    return instance, materialize([eval_metrics], instance=instance, resources=resources, tags=tags,
                                 run_config=NO_REFERENCES, raise_on_error=False, **kwargs)


def test_eval_metrics_evaluates_a_range_of_shards_in_one_run_with_checks_per_shard(populated):
    catalog = populated["catalog"]
    _filter_train_shard(catalog)
    instance, result = _materialize_range(catalog.home, ["train-a", "evalset"])
    assert result.success and len(instance.get_runs()) == 1
    stored = catalog.query("SELECT shard, metric, value, detail_json FROM eval_metrics")
    by_shard = {s: g.set_index("metric") for s, g in stored.groupby("shard")}
    assert by_shard["train-a"].loc["clips.count", "value"] == 120 and by_shard["evalset"].loc["clips.count", "value"] == 20

    evaluations = _evaluations(result)
    assert set(evaluations) == {(c, s) for c in ("metrics_finite", "clip_count_matches_catalog", "evaluation_complete")
                                for s in ("train-a", "evalset")}
    assert all(e.passed for e in evaluations.values())
    assert evaluations[("clip_count_matches_catalog", "evalset")].metadata["clips_in_catalog"].value == 20
    assert evaluations[("evaluation_complete", "train-a")].severity == AssetCheckSeverity.WARN

    # The filters' decision: kept share and drops per reason where rows exist, nothing where none do.
    train = by_shard["train-a"]
    assert train.loc["filters.kept.count", "value"] == 116 and train.loc["filters.dropped.count", "value"] == 4
    assert train.loc["filters.kept.share", "value"] == pytest.approx(116 / 120)
    assert train.loc["filters.dropped.still.count", "value"] == 3 and train.loc["filters.dropped.dark.count", "value"] == 2
    assert not any(m.startswith("filters.") for m in by_shard["evalset"].index)
    # Tiny profile: no sentence embedder, so near-duplicates are undefined and say why; exact repeats are counted.
    near = train.loc["captions.selected.near_duplicates.share"]
    assert math.isnan(near["value"]) and "no sentence embedder" in near["detail_json"]
    assert 0.0 < train.loc["captions.selected.exact_duplicates.share", "value"] <= 1.0


def test_a_metric_that_is_not_finite_fails_the_blocking_check(populated, monkeypatch):
    from panda_dagster.lib.evaluation import shard_eval
    from panda_dagster.lib.evaluation.stats import Metric

    real = shard_eval.shard_statistics

    def broken(*args, **kwargs):  # a statistic that divided by zero the numpy way
        return [*real(*args, **kwargs), Metric("clips.broken_statistic", math.inf)]

    monkeypatch.setattr(shard_eval, "shard_statistics", broken)
    _, result = _materialize_range(populated["catalog"].home, ["train-a"])
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "blocking asset check failed" in failure.step_failure_data.error.message
    finite = _evaluations(result)[("metrics_finite", "train-a")]
    assert not finite.passed and finite.severity == AssetCheckSeverity.ERROR
    assert finite.metadata["failures_by_kind"].value == {"not_finite": 1}
    assert "clips.broken_statistic" in finite.metadata["examples"].value


def _metric(name: str, value: float | None, detail: str | None = None) -> EvalMetricRecord:
    return EvalMetricRecord(shard="s", metric=name, value=value, detail_json=detail)


def test_eval_checks_on_records():
    good = [_metric("clips.count", 3.0), _metric("captions.accepted.rate", None), _metric("x.mean", 0.5)]
    assert check_metrics_finite(good).passed and check_metrics_finite(good).stats["n_undefined"] == 1
    assert not check_metrics_finite([*good, _metric("y", float("-inf"))]).passed
    assert check_clip_count(good, 3).passed
    mismatch = check_clip_count(good, 4)
    assert not mismatch.passed and "the clips table holds 4" in mismatch.examples[0].reason
    assert not check_clip_count(good[1:], 0).passed  # no clips.count recorded at all
    assert check_evaluation_complete(good).passed
    failed = check_evaluation_complete([*good, _metric("references.error", None, '{"error": "java not found"}')])
    assert not failed.passed and failed.counts == {"not_computed": 1} and "java not found" in failed.examples[0].reason


class BagOfWords:
    """A sentence embedder whose cosines are known: word-count vectors."""

    label = "bag of words"

    def __init__(self, captions):
        self.vocabulary = sorted({w for c in captions for w in c.lower().split()})

    def embed_texts(self, texts):
        import numpy as np

        out = np.zeros((len(texts), len(self.vocabulary)), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.split():
                out[i, self.vocabulary.index(word)] += 1
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_exact_and_near_duplicate_captions():
    captions = ["a red scene", "A red  scene", "a red scene view", "a blue car", ""]
    (exact,) = exact_duplicate_metrics(captions)
    assert exact.value == pytest.approx(2 / 4) and exact.detail["most_repeated"] == [{"caption": "a red scene", "clips": 2}]

    embedder = BagOfWords(captions)
    share, count = near_duplicate_metrics(captions, embedder.embed_texts, embedder.label, min_cosine=0.85)
    # cos("a red scene", "a red scene view") = 3 / sqrt(12) = 0.866; "a blue car" shares one word (0.33).
    assert count.value == 3 and share.value == pytest.approx(3 / 4)
    assert share.detail["examples"] == [{"a": "a red scene", "b": "a red scene view", "cosine": pytest.approx(0.866, abs=1e-3)}]
    share, count = near_duplicate_metrics(captions, embedder.embed_texts, embedder.label, min_cosine=0.9)
    assert count.value == 2  # only the exact repeat is left

    share, count = near_duplicate_metrics(captions, None, "", skipped_reason="profile tiny has none")
    assert share.value is None and count.value is None and share.detail == {"skipped": "profile tiny has none"}


def test_report_shows_dropped_clips_per_reason_with_their_first_key_frame(populated):
    from panda_dagster.lib.evaluation.report import build_report

    catalog = populated["catalog"]
    _filter_train_shard(catalog)
    html = build_report(catalog, populated["storage"], shards=["train-a"], n_samples=1)
    section = html[html.index("Dropped by the clip filters"):html.index("Sample clips")]
    assert "116 of 120 clips kept" in section
    assert re.search(r"<b>still</b> · 3 clips", section) and re.search(r"<b>dark</b> · 2 clips", section)
    assert len(re.findall(r'<img src="data:image/jpeg;base64,[^"]+" alt="first key frame"', section)) == 3 + 2
    assert "also dark" in section  # the clip dropped for both reasons says so under `still`


REWORDED = ["a man rides a bike down the street", "a man is riding a bike down the street.",
            "a person is talking", "a person talking"]
DIFFERENT = ["a woman rides a bike down the street", "a red flower swaying in the wind", "a blue car on a road"]


def test_near_duplicates_with_the_offline_sentence_embedder():
    """The packaged (trained) MiniLM: rewordings of one sentence are near-duplicates, a changed subject is not."""
    from panda_dagster.lib.evaluation.text_models import load_sentence_embedder

    embedder, why = load_sentence_embedder("offline", "cpu")
    assert why is None and embedder.trained
    share, count = near_duplicate_metrics(REWORDED + DIFFERENT, embedder.embed_texts, embedder.label)
    assert count.value == len(REWORDED) and share.value == pytest.approx(4 / 7)
    pairs = {(e["a"], e["b"]) for e in share.detail["examples"]}
    assert pairs == {("a man is riding a bike down the street.", "a man rides a bike down the street"),
                     ("a person is talking", "a person talking")}
    assert load_sentence_embedder("tiny", "cpu")[0] is None


def test_eval_metrics_measures_near_duplicates_in_the_offline_profile(populated):
    catalog = populated["catalog"]
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, ["train-a"])
    resources = {"panda": PandaResource(home=str(catalog.home)),
                 "evaluation_models": EvaluationModelsResource(profile="offline", device="cpu")}
    result = materialize([eval_metrics], partition_key="train-a", instance=instance, resources=resources,
                         run_config=NO_REFERENCES)
    assert result.success
    rows = catalog.query("SELECT metric, value, detail_json FROM eval_metrics WHERE shard = 'train-a'").set_index("metric")
    near = rows.loc["captions.selected.near_duplicates.share"]
    assert "all-MiniLM-L6-v2" in near["detail_json"]
    from panda_dagster.lib.evaluation.text_models import load_sentence_embedder

    embedder, _ = load_sentence_embedder("offline", "cpu")
    captions = catalog.read_shard("selected_captions", "train-a")["caption"].tolist()
    expected, _ = near_duplicate_metrics(captions, embedder.embed_texts, embedder.label)
    # "a <colour> <word> <b>bold</b>" over 12 colours and 8 words: every exact repeat is a near-duplicate too.
    assert near["value"] == pytest.approx(expected.value)
    assert 1.0 > near["value"] >= rows.loc["captions.selected.exact_duplicates.share", "value"] > 0.0
    meta = result.asset_materializations_for_node("eval_metrics")[0].metadata
    assert meta["near_duplicate_share"].value == pytest.approx(expected.value)
