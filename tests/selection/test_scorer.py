"""Scoring candidates and choosing the selected caption."""

from __future__ import annotations

import numpy as np
import pytest

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.selection.inputs import load_shard_clips
from panda_dagster.lib.selection.records import REJECT_BELOW_BAR, REJECT_PER_VIDEO_CAP
from panda_dagster.lib.selection.scorer import (
    Candidate,
    CaptionScorer,
    ClipToScore,
    ScoredClip,
    SelectionPolicy,
    clip_embeddings,
    select_captions,
    storage_frames_loader,
    teacher_win_rates,
)
from panda_dagster.lib.selection.synthetic import make_shape_preferences
from panda_dagster.lib.storage import LocalStorage


def test_clip_embedding_is_normalised_mean_of_its_frames():
    frames = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=np.float32)
    out = clip_embeddings(frames, [2, 1, 1])
    np.testing.assert_allclose(out[0], [2**-0.5, 2**-0.5, 0], atol=1e-6)
    np.testing.assert_allclose(out[1:], [[0, 0, 1], [0, 0, 1]], atol=1e-6)


def test_scores_are_cosines_of_mean_frame_and_caption_embeddings(tiny_clip):
    clips = make_shape_preferences(n_videos=3, clips_per_video=2, frames_per_clip=3, seed=3)
    to_score = [ClipToScore(c.clip_id, c.video_id, "s1", [Candidate(f"t{i}", t) for i, t in enumerate(c.candidates)],
                            frames=c.frames) for c in clips]
    scorer = CaptionScorer(tiny_clip)
    scored, unscorable = scorer.score(to_score, clips_per_batch=4, image_batch_size=5, text_batch_size=3)
    assert not unscorable and [s.clip.clip_id for s in scored] == [c.clip_id for c in clips]
    for item, clip in zip(scored, clips):
        video = tiny_clip.embed_images(clip.frames).mean(axis=0)
        video /= np.linalg.norm(video)
        expected = tiny_clip.embed_texts(clip.candidates) @ video
        np.testing.assert_allclose(item.scores, expected, atol=1e-5)
        assert np.all(np.isfinite(item.scores)) and np.all(np.abs(item.scores) <= 1 + 1e-6)
    assert scorer.name == "open_clip PandaTiny-ViT-16-64 random-init-seed-20240601" and scorer.version is None


def test_unscorable_clips_are_reported_not_fatal(tiny_clip):
    good = make_shape_preferences(n_videos=1, clips_per_video=1, seed=1)[0]
    clips = [
        ClipToScore("no-candidates", "v", "s", [], frames=good.frames),
        ClipToScore("missing-frames", "v", "s", [Candidate("t", "a red square")], keyframe_uris=["/nonexistent/x.jpg"]),
        ClipToScore("no-frames", "v", "s", [Candidate("t", "a red square")], frames=[]),
        ClipToScore("ok", "v", "s", [Candidate("t", "a red square")], frames=good.frames),
    ]
    scored, unscorable = CaptionScorer(tiny_clip).score(clips, storage_frames_loader(LocalStorage("/tmp")))
    assert [s.clip.clip_id for s in scored] == ["ok"]
    reasons = {u.clip_id: u.reason for u in unscorable}
    assert reasons["no-candidates"] == "no candidate captions"
    assert reasons["missing-frames"].startswith("key frames unreadable: FileNotFoundError")
    assert reasons["no-frames"] == "no key frames"


def _scored(clip_id, video_id, scores, teachers=None):
    teachers = teachers or [f"t{i}" for i in range(len(scores))]
    candidates = [Candidate(t, f"caption {t} of {clip_id}") for t in teachers]
    return ScoredClip(ClipToScore(clip_id, video_id, "s1", candidates), np.array(scores, dtype=np.float64))


def test_selection_keeps_best_with_margin_bar_and_per_video_cap():
    scored = [
        _scored("a", "v1", [0.30, 0.50, 0.45]),
        _scored("b", "v1", [0.40, 0.20]),
        _scored("c", "v1", [0.35]),
        _scored("d", "v1", [0.10, 0.05]),
        _scored("e", "v2", [0.31, 0.31]),  # tie: the first candidate wins, deterministically
    ]
    selected, scores = select_captions(scored, SelectionPolicy(min_score=0.3, max_clips_per_video=2),
                                       "scorer-x", "tiny-label", "v123")
    by_id = {s.clip_id: s for s in selected}
    assert by_id["a"].teacher == "t1" and by_id["a"].caption == "caption t1 of a"
    assert by_id["a"].matching_score == pytest.approx(0.50) and by_id["a"].margin_to_second == pytest.approx(0.05)
    assert by_id["c"].margin_to_second == 0.0 and by_id["c"].n_candidates == 1
    assert by_id["e"].teacher == "t0" and by_id["e"].margin_to_second == 0.0
    # Quality bar: d is below; cap 2 per video keeps the two best accepted clips of v1 (a, b), drops c.
    assert (by_id["d"].accepted, by_id["d"].reject_reason) == (False, REJECT_BELOW_BAR)
    assert (by_id["c"].accepted, by_id["c"].reject_reason) == (False, REJECT_PER_VIDEO_CAP)
    assert by_id["a"].accepted and by_id["b"].accepted and by_id["e"].accepted
    assert all(s.scorer == "scorer-x" and s.models_label == "tiny-label" and s.selection_model_version == "v123"
               for s in selected)
    assert len(scores) == 3 + 2 + 1 + 2 + 2
    ranks_a = sorted((s.rank, s.teacher) for s in scores if s.clip_id == "a")
    assert ranks_a == [(1, "t1"), (2, "t2"), (3, "t0")]
    assert teacher_win_rates(selected) == {"t0": 0.8, "t1": 0.2}

    no_bar, _ = select_captions(scored, SelectionPolicy(min_score=None), "s", "l")
    assert all(s.accepted and s.reject_reason is None for s in no_bar)


def test_shard_clips_come_from_catalog_and_storage(panda_home, write_shape_shard, tiny_clip):
    clips = write_shape_shard("shard-00001", make_shape_preferences(n_videos=2, clips_per_video=3, seed=5))
    loaded = load_shard_clips(Catalog(panda_home), "shard-00001")
    assert [c.clip_id for c in loaded] == sorted(c.clip_id for c in clips)
    truth = {c.clip_id: c for c in clips}
    for clip in loaded:
        assert sorted(c.caption for c in clip.candidates) == sorted(truth[clip.clip_id].candidates)
        assert len(clip.keyframe_uris) == 2
    frames = storage_frames_loader(LocalStorage(panda_home / "artifacts"))(loaded[0])
    original = truth[loaded[0].clip_id].frames
    assert frames[0].shape == original[0].shape
    error = np.abs(frames[0].astype(int) - original[0]).mean()
    other = np.abs(frames[0].astype(int) - truth[loaded[1].clip_id].frames[0]).mean()
    assert error < 10 and other > 2 * error, "the stored JPEG is this clip's frame (sensor noise is smoothed)"
