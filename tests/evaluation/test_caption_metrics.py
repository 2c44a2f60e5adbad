"""pycocoevalcap metrics on a hand-made case; reference extraction from the catalog tables."""

from __future__ import annotations

import json
from unittest import mock

import pandas as pd
import pytest

from panda_dagster.lib.evaluation import captions
from panda_dagster.lib.evaluation.captions import (
    METRICS,
    caption_sources,
    clip_references,
    ptb_tokenize,
    reference_metrics,
)

pytestmark = pytest.mark.skipif(not captions.java_available(), reason="caption metrics need Java")

REFERENCES = {
    "v0": ["a man rides a red bicycle down a steep hill", "a cyclist speeds downhill"],
    "v1": ["two dogs chase a ball across a sunny park", "dogs play fetch on the grass"],
    "v2": ["a woman slices tomatoes in a small kitchen", "someone is chopping vegetables"],
    "v3": ["an airplane takes off from a runway at dusk", "a jet leaves the airport"],
    "v4": ["children build a sandcastle on the beach", "kids play with sand near the sea"],
}
UNRELATED = ["stock prices fell sharply on monday", "the orchestra tunes its violins", "quantum computers need cold",
             "a recipe for lemon cake", "the senate passed a budget bill", "glaciers melt each summer",
             "my phone battery died again"]


def _catalog_frames():
    videos = pd.DataFrame({"video_id": list(REFERENCES) + ["v5", "v6"],
                           "metadata_json": [json.dumps({"references": r}) for r in REFERENCES.values()]
                           + [json.dumps({"references": [
                               {"start_s": 0.0, "end_s": 4.0, "captions": ["a bird lands on a wooden fence"]},
                               {"start_s": 4.0, "end_s": 9.0, "captions": ["the bird flies away over the trees"]}]}),
                              None]})
    clips = pd.DataFrame({
        "clip_id": [f"c{i}" for i in range(5)] + ["c5a", "c5b", "c6"],
        "video_id": list(REFERENCES) + ["v5", "v5", "v6"],
        "start_s": [0.0] * 5 + [0.0, 4.2, 0.0],
        "end_s": [5.0] * 5 + [3.9, 9.0, 5.0],
    })
    refs = clip_references(clips, videos)
    echo = {c: r[0] for c, r in refs.items()}
    unrelated = {c: UNRELATED[i] for i, c in enumerate(sorted(refs))}
    teacher_captions = pd.DataFrame(
        [{"clip_id": c, "teacher": "echo", "caption": t} for c, t in echo.items()]
        + [{"clip_id": c, "teacher": "unrelated", "caption": t} for c, t in unrelated.items()]
        + [{"clip_id": "c6", "teacher": "echo", "caption": "no reference for this clip"},
           {"clip_id": "c0", "teacher": "sparse", "caption": "a teacher that failed on every other clip"}]
    )
    ordered = sorted(refs)
    selected = pd.DataFrame({"clip_id": ordered,
                             "caption": [echo[c] if i % 2 == 0 else unrelated[c] for i, c in enumerate(ordered)]})
    return clips, videos, teacher_captions, selected, refs


def test_clip_references_per_video_and_per_span():
    clips, videos, *_ , refs = _catalog_frames()
    assert refs["c0"] == REFERENCES["v0"]
    assert refs["c5a"] == ["a bird lands on a wooden fence"]
    assert refs["c5b"] == ["the bird flies away over the trees"]
    assert "c6" not in refs  # a video without references is not part of the evaluation set
    assert len(refs) == 7


def test_ptb_tokenizer_offline():
    out = ptb_tokenize(["A man, riding a bike.", "", "Don't stop!", "line\nbreak"])
    assert out == ["a man riding a bike", "", "do n't stop", "line break"]


class _TrackedMeteor(captions.MeteorProcess):
    instances: list = []

    def __init__(self):
        super().__init__()
        _TrackedMeteor.instances.append(self)


@pytest.fixture(scope="module")
def scored():
    clips, videos, teacher_captions, selected, _ = _catalog_frames()
    with mock.patch.object(captions, "MeteorProcess", _TrackedMeteor):
        metrics, comparison = reference_metrics(clips, videos, teacher_captions, selected)
    return metrics, comparison


@pytest.mark.slow
def test_identical_captions_score_perfectly_unrelated_near_zero(scored):
    _, comparison = scored
    t = comparison.table
    assert list(t.columns[:7]) == list(METRICS)
    echo, unrelated, sel = t.loc["teacher:echo"], t.loc["teacher:unrelated"], t.loc["selected"]
    for m in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L"):
        assert echo[m] == pytest.approx(1.0, abs=1e-6), m
    assert echo["CIDEr"] > 2.0
    assert unrelated["BLEU-4"] < 1e-3 and unrelated["CIDEr"] < 0.1 and unrelated["METEOR"] < 0.1
    assert unrelated["ROUGE-L"] < 0.2
    # the selected captions are half echo, half unrelated: strictly in between
    for m in ("BLEU-1", "METEOR", "ROUGE-L", "CIDEr"):
        assert unrelated[m] < sel[m] < echo[m], m
    assert comparison.best_overall == "teacher:echo"
    assert set(comparison.best.values()) == {"teacher:echo"}
    assert comparison.n_items == 7 and (t["n_items"] == 7).all()
    # a source covering 1 of 7 clips is left out rather than shrinking everyone's item set to one clip
    assert "teacher:sparse" not in t.index and "1 of 7" in comparison.skipped["teacher:sparse"]


@pytest.mark.slow
def test_reference_metric_rows_and_meteor_process_closed(scored):
    metrics, _ = scored
    by_name = {m.name: m for m in metrics}
    assert by_name["references.items"].value == 7
    assert by_name["references.teacher:echo.BLEU-4"].value == pytest.approx(1.0, abs=1e-6)
    assert by_name["references.best.CIDEr"].detail["source"] == "teacher:echo"
    assert "SPICE" not in {n.rsplit(".", 1)[-1] for n in by_name}  # needs a download: left out
    assert len(_TrackedMeteor.instances) == 1  # one JVM for all sources
    meteor = _TrackedMeteor.instances[0]
    assert meteor.closed and not captions._pid_alive(meteor.pid)


def test_caption_sources_and_empty_evaluation_set():
    clips, videos, teacher_captions, selected, _ = _catalog_frames()
    sources = caption_sources(teacher_captions, selected)
    assert set(sources) == {"selected", "teacher:echo", "teacher:unrelated", "teacher:sparse"}
    no_refs = videos.assign(metadata_json=None)
    assert reference_metrics(clips, no_refs, teacher_captions, selected) == ([], None)
