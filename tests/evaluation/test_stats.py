"""Per-shard statistics and their plots, on hand-made catalog rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from panda_dagster.lib.evaluation import plots
from panda_dagster.lib.evaluation.stats import (
    Metric,
    metrics_frame,
    reason_kind,
    shard_statistics,
    to_records,
    words,
)


def _frames():
    clips = pd.DataFrame({
        "clip_id": ["a", "b", "c", "d"],
        "video_id": ["v1", "v1", "v2", "v3"],
        "start_s": [0.0, 4.0, 0.0, 10.0],
        "end_s": [4.0, 12.0, 10.0, 16.0],  # durations 4, 8, 10, 6 -> mean 7
        "split_quality": [0.1, 0.3, None, json.dumps({"max_running_distance": 0.5})],
    })
    teacher_captions = pd.DataFrame({
        "clip_id": ["a", "a", "b", "b", "c", "c", "d", "d"],
        "teacher": ["blip2", "llava"] * 4,
        "model_id": ["Salesforce/blip2", "llava-hf/llava"] * 4,
        "caption": ["a dog runs", "a brown dog runs fast", "a cat", "a cat sleeps on a mat",
                    "a car", "a red car drives", "", "two men talk"],
    })
    selected = pd.DataFrame({
        "clip_id": ["a", "b", "c", "d"],
        "caption": ["a brown dog runs fast", "a cat sleeps on a mat", "a car", "two men talk"],
        "teacher": ["llava", "llava", "blip2", "llava"],
        "matching_score": [0.30, 0.25, 0.20, 0.35],
        "margin_to_second": [0.05, 0.01, 0.02, 0.10],
        "accepted": [True, True, False, True],
    })
    quarantine = pd.DataFrame({
        "shard": ["s"] * 4,
        "uri": ["/x/a.mp4", "/x/b.mp4", "/x/c.mp4", "/x/d.mp4"],
        "stage": ["raw_videos", "raw_videos", "raw_videos", "clips"],
        "reason": ["file not found: /x/a.mp4", "file not found: /x/b.mp4", "no video stream in /x/c.mp4",
                   "clip shorter than 2.0 s"],
        "action": ["dropped", "dropped", "dropped", "dropped"],
    })
    videos = pd.DataFrame({"video_id": ["v1", "v2", "v3"], "duration_s": [12.0, 10.0, 16.0],
                           "n_subtitle_cues": [3, 0, 1]})
    return clips, selected, teacher_captions, quarantine, videos


def test_shard_statistics_values():
    clips, selected, teacher_captions, quarantine, videos = _frames()
    metrics = shard_statistics(clips, selected, teacher_captions, quarantine, videos)
    m = {x.name: x for x in metrics}
    assert m["clips.count"].value == 4 and m["clips.videos"].value == 3
    assert m["clips.duration_s.mean"].value == pytest.approx(7.0)
    assert m["clips.duration_s.median"].value == pytest.approx(7.0)
    assert m["clips.duration_s.mean"].detail["reference"] == 8.5
    assert sum(m["clips.duration_s.mean"].detail["histogram"]["counts"]) == 4
    assert m["clips.total_duration_h"].value == pytest.approx(28 / 3600)
    assert m["videos.with_subtitles.rate"].value == pytest.approx(2 / 3)
    # selected captions: 5 + 6 + 2 + 3 words; vocabulary a brown dog runs fast cat sleeps on mat car two men talk
    assert m["captions.selected.length_words.mean"].value == pytest.approx(16 / 4)
    assert m["captions.selected.vocabulary_size"].value == 13
    assert m["captions.accepted.rate"].value == pytest.approx(0.75)
    assert m["captions.accepted.length_words.mean"].value == pytest.approx(14 / 3)
    assert m["teacher.llava.win_rate"].value == pytest.approx(0.75)
    assert m["teacher.blip2.win_rate"].value == pytest.approx(0.25)
    assert m["teacher.llava.win_rate"].detail["wins_accepted"] == 3
    assert m["teacher.blip2.captions.empty"].value == 1 and m["teacher.llava.captions.empty"].value == 0
    assert m["captions.accepted.count"].value == 3
    assert m["teacher.blip2.captions.count"].detail == {"model_ids": ["Salesforce/blip2"]}
    assert m["matching_score.mean"].value == pytest.approx(0.275)
    assert m["margin_to_second.mean"].value == pytest.approx(0.045)
    # split quality: 0.1, 0.3 and 0.5 (JSON); the missing one is skipped
    assert m["split.max_running_distance.mean"].value == pytest.approx(0.3)
    assert m["quarantine.count"].value == 4
    assert m["quarantine.stage.raw_videos"].value == 3 and m["quarantine.stage.clips"].value == 1
    by_reason = {(r["stage"], r["reason"]): r["count"] for r in m["quarantine.count"].detail["by_reason"]}
    assert by_reason[("raw_videos", "file not found")] == 2  # paths differ, the problem is the same


def test_records_are_unique_and_serialisable():
    clips, selected, teacher_captions, quarantine, videos = _frames()
    records = to_records("shard-1", shard_statistics(clips, selected, teacher_captions, quarantine, videos))
    assert all(r.shard == "shard-1" for r in records)
    frame = metrics_frame(records)
    assert frame["metric"].is_unique
    with pytest.raises(ValueError, match="duplicated"):
        to_records("s", [Metric("x", 1.0), Metric("x", 2.0)])
    assert Metric("nan", float("nan")).record("s").value is None


def test_empty_shard_still_reports_quarantine():
    empty = pd.DataFrame()
    _, _, _, quarantine, _ = _frames()
    metrics = {m.name: m for m in shard_statistics(pd.DataFrame(columns=["clip_id", "video_id", "start_s", "end_s"]),
                                                   empty, empty, quarantine, pd.DataFrame())}
    assert metrics["clips.count"].value == 0
    assert metrics["videos.count"].value == 0
    assert metrics["quarantine.count"].value == 4


def test_words_and_reason_kind():
    assert words("A man's dog DOESN'T bark, 2 times!") == ["a", "man's", "dog", "doesn't", "bark", "2", "times"]
    assert reason_kind("could not download s3://b/k.mp4: timeout") == "could not download …"
    assert reason_kind("clip shorter than 2.0 s") == "clip shorter than … s"


def test_shard_plots_are_pngs_drawn_from_metric_rows():
    clips, selected, teacher_captions, quarantine, videos = _frames()
    frame = metrics_frame(to_records("s", shard_statistics(clips, selected, teacher_captions, quarantine, videos)))
    figures = plots.shard_plots(frame, "s")
    assert {"clip_durations", "caption_lengths", "matching_scores", "split_consistency", "teacher_win_rates",
            "quarantine_reasons"} <= set(figures)
    for png in figures.values():
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000


def test_retrieval_plot():
    results = pd.DataFrame([
        {"train_text": t, "eval_set": "heldout", "eval_text": t, "direction": "t2v", "r1": r, "r5": r + 10, "r10": r + 20}
        for t, r in (("selected", 30.0), ("narration", 10.0))
    ])
    png = plots.retrieval_png(results, "retrieval")
    assert png[:4] == b"\x89PNG"
    assert plots.retrieval_png(results.assign(direction="v2t"), "none") is None
    assert np.isfinite(results["r1"]).all()
