"""The splitting pipeline on generated videos with known cuts: accuracy, timestamps, bad input."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from panda_dagster.lib.video.metrics import score_cuts
from panda_dagster.lib.video.split import SplitConfig, split_video, split_videos
from panda_dagster.lib.video.stitching import StitchConfig

NO_STITCH = SplitConfig(stitch=False)


def colour_histogram_embedder(images: list[np.ndarray]) -> np.ndarray:
    """A deterministic stand-in for open_clip: Hellinger-normalised 4x4x4 RGB histograms (unit norm)."""
    out = []
    for image in images:
        bins = (image.reshape(-1, 3) // 64).astype(np.int64)
        hist = np.bincount(bins[:, 0] * 16 + bins[:, 1] * 4 + bins[:, 2], minlength=64).astype(np.float64)
        vec = np.sqrt(hist / hist.sum())
        out.append(vec / np.linalg.norm(vec))
    return np.asarray(out, dtype=np.float32)


def test_cuts_found_and_shots_partition_the_video(cuts_video):
    result = split_video(cuts_video.path, NO_STITCH)
    assert result.n_frames == cuts_video.n_frames
    assert result.fps == pytest.approx(25.0)
    score = score_cuts(result.cuts, cuts_video.cut_frames, cuts_video.gradual, tolerance=2)
    assert score.f1 >= 0.95, (result.cuts, cuts_video.cut_frames, cuts_video.gradual)
    assert score.recall == 1.0  # every hard cut found
    shots = result.shots
    assert shots[0].start_frame == 0 and shots[-1].end_frame == result.n_frames
    assert all(a.end_frame == b.start_frame and a.end_s == b.start_s for a, b in zip(shots, shots[1:]))
    for shot in shots:
        assert shot.start_s == pytest.approx(shot.start_frame / 25.0, abs=1e-6)
    assert result.duration_s == pytest.approx(cuts_video.n_frames / 25.0, abs=1e-6)
    # Without stitching, clips are the shots of at least min_clip_s.
    assert all(c.method == "shot" and c.duration_s >= 2.5 - 1e-9 for c in result.clips)


def test_odd_frame_rates_keep_timestamps(tmp_path):
    from panda_dagster.fixtures.synth import Scene, render_video

    for fps in (12.5, 30000 / 1001):
        scenes = [Scene(2.0, background=bg, texture="striped", seed=i)
                  for i, bg in enumerate(["blue", "orange", "green"])]
        video = render_video(tmp_path / f"rate_{fps:.2f}.mp4", scenes, fps=fps, size=(160, 96), audio=False)
        result = split_video(video.path, NO_STITCH)
        assert result.fps == pytest.approx(float(Fraction(fps).limit_denominator(1001)), rel=1e-6)
        assert result.cuts == video.cut_frames
        for shot in result.shots[1:]:
            assert shot.start_s == pytest.approx(shot.start_frame / fps, abs=1e-3)


def test_variable_frame_rate_times_come_from_pts(cuts_video, ffmpeg_run, tmp_path):
    vfr = tmp_path / "vfr.mkv"
    # Every second frame holds twice as long: frame n is shown at (n + floor(n / 2)) / 25 s.
    ffmpeg_run("-i", str(cuts_video.path), "-vf", "setpts=(N+floor(N/2))/25/TB", "-fps_mode", "vfr",
               "-an", "-c:v", "libx264", "-preset", "ultrafast", str(vfr))
    result = split_video(vfr, NO_STITCH)
    assert result.n_frames == cuts_video.n_frames
    score = score_cuts(result.cuts, cuts_video.cut_frames, cuts_video.gradual, tolerance=2)
    assert score.f1 >= 0.95
    for shot in result.shots:
        n = shot.start_frame
        assert shot.start_s == pytest.approx((n + n // 2) / 25.0, abs=2e-3), n
    last = result.n_frames - 1
    assert result.duration_s > (last + last // 2) / 25.0


def test_partially_decodable_video_keeps_the_decodable_part(long_shot_video, tmp_path):
    from panda_dagster.fixtures.synth import Scene, render_video

    full = render_video(tmp_path / "full.mkv", [Scene(6.0, background="blue", texture="wavy", seed=3),
                                               Scene(6.0, background="orange", texture="striped", seed=4)],
                        fps=20.0, size=(192, 108), audio=False)
    data = full.path.read_bytes()
    broken = tmp_path / "truncated.mkv"
    broken.write_bytes(data[: int(len(data) * 0.6)])
    result = split_video(broken, NO_STITCH)
    assert 0 < result.n_frames < full.n_frames
    assert result.partial_reason and "truncated" in result.partial_reason
    assert result.clips and all(c.end_s <= result.duration_s + 1e-9 for c in result.clips)


def test_zero_one_frame_and_garbage_inputs_yield_no_clips_and_a_reason(ffmpeg_run, tmp_path):
    one = tmp_path / "one.mp4"
    ffmpeg_run("-f", "lavfi", "-i", "color=red:size=64x64:rate=25", "-frames:v", "1", "-pix_fmt", "yuv420p", str(one))
    result = split_video(one, NO_STITCH)
    assert result.n_frames == 1 and result.clips == [] and "1 decodable frame" in result.no_clips_reason
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    result = split_video(garbage, NO_STITCH)
    assert result.n_frames == 0 and result.clips == [] and result.no_clips_reason.startswith("undecodable")
    audio_only = tmp_path / "audio.m4a"
    ffmpeg_run("-f", "lavfi", "-i", "sine=frequency=440:duration=1", str(audio_only))
    result = split_video(audio_only, NO_STITCH)
    assert result.clips == [] and "no video stream" in result.no_clips_reason


def test_long_shots_are_split_then_stitched_back(long_shot_video):
    cfg = SplitConfig(stitching=StitchConfig(still_dist=0.0))  # a histogram barely changes within a pan: do not call it still
    result = split_video(long_shot_video.path, cfg, embed_images=colour_histogram_embedder,
                         models_label="colour histogram")
    assert result.cuts == long_shot_video.cut_frames == [240]
    assert len(result.pieces) == 5  # 12 s -> 3 x 4 s, 9 s -> 2 x 4.5 s
    assert [c.n_shots_merged for c in result.clips] == [3, 2]
    first, second = result.clips
    assert first.start_s == pytest.approx(1.2, abs=0.051) and first.end_s == pytest.approx(10.8, abs=0.051)
    assert second.start_s == pytest.approx(12.9, abs=0.051) and second.end_s == pytest.approx(20.1, abs=0.051)
    for clip in result.clips:
        assert clip.method == "stitched"
        assert clip.split_quality is not None and 0.0 <= clip.split_quality < 0.6
        assert len(clip.keyframe_samples) == 3
        frames = [result.decoded.samples[k].index for k in clip.keyframe_samples]
        assert all(clip.start_frame <= f < clip.end_frame for f in frames)


def test_idle_threads_embed_a_long_videos_frames_with_the_same_result(long_shot_video):
    """`run_parallel` (the shard pool's helpers) shares the frames to embed out: same clips, same split
    quality, and the work really is spread over threads."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from panda_dagster.lib.processes import run_with_helpers

    cfg = SplitConfig(stitching=StitchConfig(still_dist=0.0))
    threads: set[str] = set()

    def embed(images):
        threads.add(threading.current_thread().name)
        return colour_histogram_embedder(images)

    alone = split_video(long_shot_video.path, cfg, embed_images=colour_histogram_embedder)
    with ThreadPoolExecutor(max_workers=2) as pool:
        shared = split_video(long_shot_video.path, cfg, embed_images=embed,
                             run_parallel=lambda work, items: run_with_helpers(pool, 1, work, items))
    assert [(c.start_frame, c.end_frame, c.split_quality) for c in shared.clips] == [
        (c.start_frame, c.end_frame, c.split_quality) for c in alone.clips]
    assert len(threads) == 2


def test_a_long_video_among_short_ones_is_decoded_in_stretches_and_started_first():
    from panda_dagster.lib.video.shard import VideoToSplit, decode_plan, longest_first

    videos = [VideoToSplit(f"v{k}", "u", "p", duration_s=30.0) for k in range(10)]
    videos.insert(3, VideoToSplit("film", "u", "p", duration_s=600.0))
    videos.append(VideoToSplit("unknown", "u", "p"))
    assert [v.video_id for v in longest_first(videos)][:2] == ["film", "v0"]
    assert longest_first(videos)[-1].video_id == "unknown"
    plan = decode_plan(videos, 2, SplitConfig(), min_segment_s=30.0)
    assert plan["film"] == 2 and {plan[v.video_id] for v in videos if v.video_id != "film"} == {1}
    assert decode_plan(videos, 4, SplitConfig(), 30.0)["film"] == 3  # ceil(600 * 4 / 900)
    assert decode_plan(videos, 2, SplitConfig(max_video_s=40.0), 30.0)["film"] == 1  # only 40 s are split
    assert decode_plan(videos, 1, SplitConfig(), 30.0) == {}  # one thread: each video decides for itself
    assert decode_plan(videos, 2, SplitConfig(decode_segments=1), 30.0) == {}  # the user's setting wins
    (one,) = [VideoToSplit("only", "u", "p", duration_s=300.0)]
    assert decode_plan([one], 2, SplitConfig(), 30.0) == {"only": 2}


def test_max_video_s_limits_the_split(cuts_video):
    result = split_video(cuts_video.path, SplitConfig(stitch=False, max_video_s=3.0))
    assert result.n_frames == 75 and result.duration_s == pytest.approx(3.0)
    assert result.partial_reason is None
    assert all(c < 75 for c in result.cuts)


def test_process_pool_gives_the_same_cuts(cuts_video, long_shot_video):
    paths = [cuts_video.path, long_shot_video.path]
    pooled = split_videos(paths, NO_STITCH, workers=2)
    assert [r.video for r in pooled] == [str(p) for p in paths]
    assert [r.cuts for r in pooled] == [split_video(p, NO_STITCH).cuts for p in paths]


def test_cli_prints_shots_and_clips_as_json(cuts_video, capsys):
    from panda_dagster.cli import main

    assert main(["split", str(cuts_video.path), "--no-stitch", "--min-clip-s", "1.0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["video"] == str(cuts_video.path) and out["n_frames"] == cuts_video.n_frames
    assert out["fps"] == pytest.approx(25.0)
    starts = [s["start_frame"] for s in out["shots"]]
    assert starts[0] == 0 and out["shots"][-1]["end_frame"] == cuts_video.n_frames
    boundaries = [b["frame"] for b in out["boundaries"]]  # shot starts also include gradual spans' ends
    assert score_cuts(boundaries, cuts_video.cut_frames, cuts_video.gradual).f1 >= 0.95
    assert set(out["shots"][0]) == {"start_frame", "end_frame", "start_s", "end_s"}
    assert out["clips"] and {"start_s", "end_s"} <= set(out["clips"][0])


def test_cli_threshold_reaches_the_default_detector(cuts_video, capsys):
    """`--threshold` is the default detector's HSV cut threshold: set above every score, no hard cut is
    left (it used to be ignored silently when the detector named it differently)."""
    from panda_dagster.cli import main

    args = ["split", str(cuts_video.path), "--no-stitch", "--json"]
    assert main(args) == 0
    normal = json.loads(capsys.readouterr().out)
    assert main(args + ["--threshold", "1000"]) == 0
    strict = json.loads(capsys.readouterr().out)
    assert [b for b in normal["boundaries"] if b["kind"] == "cut"] and not [
        b for b in strict["boundaries"] if b["kind"] == "cut"]


def test_cli_stitches_with_the_tiny_open_clip(long_shot_video, panda_home, capsys):
    from panda_dagster.cli import main
    from panda_dagster.lib.models.profiles import TINY_LABEL

    assert main(["split", str(long_shot_video.path), "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert "still filter is off" in captured.err
    assert out["models_label"] == TINY_LABEL
    assert [s["start_frame"] for s in out["shots"]] == [0, 240]
    for clip in out["clips"]:
        assert clip["method"] == "stitched" and clip["end_s"] - clip["start_s"] >= 2.5 - 1e-9
    # The tiny model's compressed distances would call every event still: the CLI turns that filter off.
    assert out["clips"]
    assert main(["split", str(long_shot_video.path) + ".missing"]) == 2


def test_narration_clips_follow_the_cues_on_a_real_video(cuts_video):
    from panda_dagster.lib.subtitles import Cue

    cues = [Cue(0.2, 1.0, "a red thing"), Cue(1.1, 2.5, "moves to the left of the screen"),
            Cue(3.0, 7.5, "then a long explanation of what happens next follows here"),
            Cue(14.0, 40.0, "past the end")]
    result = split_video(cuts_video.path, SplitConfig(mode="both"), embed_images=colour_histogram_embedder,
                         cues=cues)
    narration = [c for c in result.clips if c.method == "narration"]
    # The first two cues (2.3 s, 9 words) are too thin alone and merge with the third; the last one is
    # clamped to the end of the video; times snap to frames (25 fps).
    assert [(round(c.start_s, 2), round(c.end_s, 2)) for c in narration] == [(0.2, 7.52), (14.0, 15.6)]
    assert narration[0].narration.startswith("a red thing moves to the left of the screen then a long")
    assert all(c.start_frame == round(c.start_s * 25) for c in narration)
    assert any(c.method != "narration" for c in result.clips) or result.dropped
    only = split_video(cuts_video.path, SplitConfig(mode="auto", stitch=False), cues=cues)
    assert {c.method for c in only.clips} == {"narration"}


def test_cli_narration_clips_from_a_subtitle_file(cuts_video, tmp_path, capsys):
    from panda_dagster.cli import main
    from panda_dagster.lib.subtitles import Cue, write_srt

    srt = write_srt([Cue(0.5, 3.0, "one two three four five six seven eight nine ten eleven twelve"),
                     Cue(6.0, 11.0, "a long quiet stretch")], tmp_path / "talk.srt")
    assert main(["split", str(cuts_video.path), "--no-stitch", "--subtitles", str(srt), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(c["start_s"], c["end_s"], c["method"]) for c in out["clips"]] == [(0.52, 3.0, "narration"),
                                                                              (6.0, 11.0, "narration")]
    assert out["clips"][0]["narration"].startswith("one two three")


def test_bad_config_values_fail_early():
    with pytest.raises(ValueError, match="unknown detector"):
        SplitConfig(detector="magic")
    with pytest.raises(ValueError, match="trim_frac"):
        SplitConfig(stitching=StitchConfig(trim_frac=0.6))
    with pytest.raises(ValueError, match="mode"):
        SplitConfig(mode="everything")


def test_samples_stay_within_max_samples_and_cover_the_video(cuts_video):
    from panda_dagster.lib.video.decode import decode_video

    decoded = decode_video(cuts_video.path, sample_fps=25.0, max_samples=20)
    assert 10 <= len(decoded.samples) <= 20
    assert decoded.samples[-1].index > 0.8 * decoded.n_frames
    rgb = decoded.samples[0].rgb
    assert rgb.shape == (180, 320, 3) and rgb.dtype == np.uint8  # never upscaled past the source


def test_cli_stitches_with_the_offline_profiles_trained_frame_embedder(long_shot_video, panda_home, capsys,
                                                                       monkeypatch):
    """In the `offline` profile `panda split` stitches with the packaged EfficientNet-Lite0 (trained) and its
    own calibrated distances; the still filter stays on (only random weights turn it off)."""
    from panda_dagster.cli import main
    from panda_dagster.lib.models.embedders import STITCH_DISTANCES, load_image_embedder
    from panda_dagster.lib.video.split import load_split_embedder

    monkeypatch.setenv("PANDA_MODELS", "offline")
    model, config, note = load_split_embedder(SplitConfig(), device="cpu")
    assert model.trained and model.spec.family == "efficientnet" and note is None
    own = STITCH_DISTANCES["efficientnet_lite0"]
    assert (config.stitching.stitch_dist, config.stitching.transition_dist, config.stitching.still_dist,
            config.stitching.redundant_dist) == (own.stitch_dist, own.transition_dist, own.still_dist,
                                                 own.redundant_dist)
    _, kept, _ = load_split_embedder(SplitConfig(stitching=StitchConfig(stitch_dist=0.5)), device="cpu")
    assert kept.stitching.stitch_dist == 0.5 and kept.stitching.still_dist == own.still_dist  # a set value stays

    assert main(["split", str(long_shot_video.path), "--device", "cpu", "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert "still filter is off" not in captured.err
    assert out["models_label"] == load_image_embedder("efficientnet_lite0", "offline", "cpu").label
    assert [s["start_frame"] for s in out["shots"]] == [0, 240]
    assert out["clips"] and all(c["method"] == "stitched" and c["split_quality"] is not None for c in out["clips"])
    assert all(c["end_s"] - c["start_s"] >= 2.5 - 1e-9 for c in out["clips"])
    # The process-pool path (`split_videos`, as benchmarks use it) picks the same embedder and distances.
    (pooled,) = split_videos([long_shot_video.path], SplitConfig(), workers=1, models_profile="offline")
    assert pooled.models_label == out["models_label"]
    assert [(round(c.start_s, 6), round(c.end_s, 6)) for c in pooled.clips] == \
        [(c["start_s"], c["end_s"]) for c in out["clips"]]
