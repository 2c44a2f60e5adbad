"""eval_metrics of a shard, the retrieval benchmark on catalog data and the HTML report."""

from __future__ import annotations

import re

import numpy as np
import pytest

from panda_dagster.lib.evaluation import captions
from panda_dagster.lib.evaluation.benchmark import clip_narration, pil_loader, run_retrieval_benchmark
from panda_dagster.lib.evaluation.catalog_io import catalog_shards, load_shard_tables
from panda_dagster.lib.storage import artifact_reader
from panda_dagster.lib.evaluation.howto100m import JointEmbeddingConfig
from panda_dagster.lib.evaluation.records import ALL_SHARDS
from panda_dagster.lib.evaluation.report import build_report, write_report
from panda_dagster.lib.evaluation.shard_eval import evaluate_shard
from panda_dagster.lib.models.profiles import TINY_LABEL

FAST = JointEmbeddingConfig(embed_dim=32, epochs=25, batch_size=32, learning_rate=3e-3, seed=0)


def test_shard_evaluation_of_a_catalog_shard(populated):
    catalog = populated["catalog"]
    assert catalog_shards(catalog) == ["evalset", "train-a"]
    tables = load_shard_tables(catalog, "train-a")
    ev = evaluate_shard(tables)
    assert ev.value("clips.count") == 120 and ev.value("videos.count") == 24
    assert ev.value("models.tiny") == 1.0
    assert ev.value("teacher.tinyllava.win_rate") == 1.0 and ev.value("teacher.tinyblip.win_rate") == 0.0
    assert ev.value("captions.accepted.rate") == pytest.approx(0.8)
    assert ev.value("quarantine.count") == 1
    assert ev.comparison is None  # no references in this shard
    assert {"clip_durations", "teacher_win_rates", "matching_scores"} <= set(ev.plots)
    catalog.replace_shard("eval_metrics", "train-a", ev.records())
    stored = catalog.query("SELECT metric, value FROM eval_metrics WHERE shard = 'train-a'")
    assert len(stored) == len(ev.metrics)
    catalog.replace_shard("eval_metrics", "train-a", ev.records())  # idempotent
    assert len(catalog.read_shard("eval_metrics", "train-a")) == len(ev.metrics)


def test_narration_from_overlapping_cues(populated):
    tables = load_shard_tables(populated["catalog"], "train-a")
    narration = clip_narration(tables.clips.head(3), tables.subtitles)
    assert all(n.startswith("now we look at") for n in narration)


def test_retrieval_benchmark_three_ways(populated, encoders):
    catalog, storage = populated["catalog"], populated["storage"]
    frames = {s: load_shard_tables(catalog, s) for s in ("train-a", "evalset")}
    import pandas as pd

    cat = lambda attr: pd.concat([getattr(t, attr) for t in frames.values()], ignore_index=True)  # noqa: E731
    result = run_retrieval_benchmark(cat("clips"), cat("selected_captions"), cat("teacher_captions"), cat("subtitles"),
                                     cat("videos"), pil_loader(artifact_reader(storage)),
                                     encoders.embed_images, encoders.embed_texts, FAST, models_label=TINY_LABEL)
    assert result.eval_shards == ["evalset"] and result.train_shards == ["train-a"]
    assert result.fixed_teacher == "tinyblip"  # tinyllava wins every clip; the fixed baseline is the other, by name
    t = result.table()
    own = t[(t.eval_set == "heldout") & (t.train_text == t.eval_text) & (t.direction == "t2v")].set_index("train_text")
    assert set(own.index) == {"selected", "narration", "teacher:tinyblip"}
    # accepted clips only (4 of 5 per video), whole videos held out
    assert own["n_train_clips"].iloc[0] + own["n_queries"].iloc[0] == 24 * 4
    chance = 100.0 / own.loc["selected", "n_candidates"]
    assert own.loc["selected", "r1"] >= 5 * chance  # the selected captions name the key frames' colour
    assert own.loc["selected", "median_rank"] < own.loc["teacher:tinyblip", "median_rank"]
    refs = t[t.eval_set == "references:evalset"]
    by_dir = refs.set_index(["train_text", "direction"])
    # 20 clips with 2 reference sentences each: 40 text queries over 20 clips, 20 video queries over 40 texts
    assert by_dir.loc[("selected", "t2v"), ["n_queries", "n_candidates"]].tolist() == [40, 20]
    assert by_dir.loc[("selected", "v2t"), ["n_queries", "n_candidates"]].tolist() == [20, 40]
    assert all(r.shard == ALL_SHARDS for r in result.records)
    catalog.replace_shard("retrieval_results", ALL_SHARDS, result.records)


@pytest.mark.slow
@pytest.mark.skipif(not captions.java_available(), reason="caption metrics need Java")
def test_report_contains_everything(populated, encoders, tmp_path):
    catalog, storage = populated["catalog"], populated["storage"]
    ev = evaluate_shard(load_shard_tables(catalog, "train-a"))
    catalog.replace_shard("eval_metrics", "train-a", ev.records())  # evalset is left to the report to compute
    test_retrieval_benchmark_three_ways(populated, encoders)
    path = write_report(catalog, storage, n_samples=3)
    assert path == catalog.home / "reports" / "dataset_report.html"
    html = path.read_text()
    assert TINY_LABEL in html
    assert "Shard train-a" in html and "Shard evalset" in html
    assert "computed for this report" in html  # evalset had no eval_metrics rows
    assert "Captions against reference captions" in html and "CIDEr" in html
    assert "text → video" in html and "references:evalset" in html
    assert len(re.findall(r'src="data:image/png;base64,', html)) >= 6
    assert len(re.findall(r'src="data:image/jpeg;base64,', html)) >= 6  # key-frame thumbnails
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html  # captions are escaped
    assert "highest matching score" in html and "rejected" in html
    assert 'src="/' not in html and "file://" not in html  # self-contained


def test_report_on_an_empty_catalog(panda_home):
    from panda_dagster.lib.catalog import Catalog
    from panda_dagster.lib.storage import LocalStorage

    html = build_report(Catalog(panda_home), LocalStorage(panda_home / "artifacts"))
    assert "No shard in the catalog yet" in html
    assert "has not been materialized yet" in html
    assert TINY_LABEL not in html


def test_feature_cache_skips_already_embedded_clips(populated, encoders, tmp_path):
    from panda_dagster.lib.evaluation.benchmark import FeatureCache, text_features, video_features

    storage = populated["storage"]
    clips = load_shard_tables(populated["catalog"], "train-a").clips.head(10)
    calls = []

    def counting_embed(images):
        calls.append(len(images))
        return encoders.embed_images(images)

    cache = FeatureCache(tmp_path / "feats.npz")
    first = video_features(clips, pil_loader(artifact_reader(storage)), counting_embed, cache=cache)
    texts = text_features(["a red scene", "", "a red scene", "a blue view"], encoders.embed_texts, cache)
    cache.save()
    assert sum(calls) == 20 and len(cache) == 10 + 2
    assert np.isnan(texts[1]).all() and np.allclose(texts[0], texts[2])

    reloaded = FeatureCache(tmp_path / "feats.npz")
    calls.clear()
    again = video_features(clips, pil_loader(artifact_reader(storage)), counting_embed, cache=reloaded)
    assert calls == [] and np.allclose(first, again)
    (tmp_path / "feats.npz").write_bytes(b"garbage")
    assert len(FeatureCache(tmp_path / "feats.npz")) == 0  # a damaged cache is rebuilt


def test_shard_without_any_upstream_rows():
    import pandas as pd

    from panda_dagster.lib.evaluation.catalog_io import ShardTables

    empty = pd.DataFrame()
    ev = evaluate_shard(ShardTables("s", empty, empty, empty, empty, empty, empty, empty))
    assert ev.value("clips.count") == 0 and ev.value("quarantine.count") == 0
    assert ev.value("models.tiny") == 0.0 and ev.plots == {}
    assert len(ev.records()) == len(ev.metrics)


def test_offline_shard_says_per_model_what_was_trained_and_what_random(populated):
    """An `offline` run: the eval_metrics label and the report banner list the trained models (ASR, frame and
    sentence embedders) apart from the random-weight ones (captioners, caption scorer) — not "TINY MODELS"."""
    import dataclasses

    from panda_dagster.lib.models.roles import models_label, profile_roles
    from panda_dagster.lib.storage import LocalStorage

    catalog = populated["catalog"]
    for table, changes in (("teacher_captions", {"profile": "offline"}), ("selected_captions", {"models_label": "offline"}),
                           ("clips", {"models_label": "timm/tf_efficientnet_lite0@packaged"})):
        catalog.replace_shard(table, "train-a", [dataclasses.replace(r, **changes) for r in catalog.rows(table, "train-a")])
    ev = evaluate_shard(load_shard_tables(catalog, "train-a"))
    models = ev.metrics[0]
    assert models.name == "models.tiny" and models.value == 1.0  # captions still come from random twins
    assert models.detail["label"] == models_label("offline") and TINY_LABEL not in models.detail["label"]
    assert models.detail["profiles"] == ["offline"]
    assert models.detail["random_roles"] == ["caption scorer", "captioners"]
    trained = {r.role for r in profile_roles("offline") if r.trained}
    assert trained == {"asr", "frame embedder", "sentence embedder"}
    catalog.replace_shard("eval_metrics", "train-a", ev.records())

    html = build_report(catalog, LocalStorage(catalog.home / "artifacts"), shards=["train-a"], n_samples=1)
    banner = html[html.index("Models profile <b>offline</b>"):]
    banner = banner[:banner.index("</div>")]
    trained_part, random_part = banner.split("RANDOM weights:")
    for role in trained:
        assert f"{role} (" in trained_part and f"{role} (" not in random_part
    assert "EfficientNet-Lite0" in trained_part and "all-MiniLM-L6-v2" in trained_part
    assert "captioners (" in random_part and "caption scorer (" in random_part
    assert TINY_LABEL not in html
    assert "RANDOM weights: caption scorer, captioners" in html  # the shard's own tag
