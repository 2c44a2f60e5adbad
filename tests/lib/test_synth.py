"""synth renders videos whose decoded frames match the ground truth it reports."""

from __future__ import annotations

import hashlib
import json

import av
import numpy as np
import pytest

from panda_dagster.fixtures import synth
from panda_dagster.lib.subtitles import parse_subtitles
from panda_dagster.fixtures.synth import PALETTE, Scene, Shape, Transition, make_demo_corpus, random_scenes, render_video


def decode_rgb(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24").astype(np.int16) for frame in container.decode(video=0)]


def frame_diffs(frames: list[np.ndarray]) -> np.ndarray:
    """diffs[i] = mean |frame[i] - frame[i-1]|, diffs[0] = 0."""
    return np.array([0.0] + [float(np.abs(frames[i] - frames[i - 1]).mean()) for i in range(1, len(frames))])


def two_shape_scene(duration: float, background: str, texture: str, pan=(0.0, 0.0)) -> Scene:
    return Scene(
        duration,
        background=background,
        texture=texture,
        shapes=[
            Shape("circle", "yellow" if background != "yellow" else "blue", 0.3, (0.2, 0.3), (0.8, 0.3)),
            Shape("square", "white" if background != "white" else "black", 0.2, (0.5, 0.8), (0.5, 0.55)),
        ],
        pan_px=pan,
    )


@pytest.fixture(scope="module")
def mixed_video(tmp_path_factory):
    scenes = [
        two_shape_scene(2.0, "blue", "striped", pan=(30.0, 0.0)),
        two_shape_scene(2.0, "red", "checkered"),
        two_shape_scene(2.4, "green", "plain"),
        two_shape_scene(2.0, "black", "wavy", pan=(0.0, -20.0)),
    ]
    transitions = [Transition("cut"), Transition("dissolve", 0.8), Transition("fade", 1.0)]
    subtitles = [(0.2, 1.8, "First shot"), (2.2, 3.5, "Second <i>shot</i>")]
    video = render_video(
        tmp_path_factory.mktemp("synth") / "mixed.mp4", scenes, transitions,
        subtitles=subtitles, metadata={"title": "Mixed", "description": "four shots"},
    )
    return video, scenes, decode_rgb(video.path)


def test_timeline_is_exact(mixed_video):
    video, scenes, frames = mixed_video
    assert video.n_frames == len(frames) == 210  # (2 + 2 + 2.4 + 2) s * 25 fps
    assert (video.width, video.height) == (320, 180) and frames[0].shape == (180, 320, 3)
    assert [s[:2] for s in video.scenes] == [(0, 50), (50, 100), (100, 160), (160, 210)]
    assert [s[2] for s in video.scenes] == [s.label for s in scenes]
    assert video.cut_frames == [50]
    assert video.gradual == [(90, 110), (148, 173)]  # straddling the nominal boundaries 100 and 160
    assert video.gradual_kinds == ["dissolve", "fade"]
    assert video.clean_scenes() == [(0, 50, video.scenes[0][2]), (50, 90, video.scenes[1][2]),
                                     (110, 148, video.scenes[2][2]), (173, 210, video.scenes[3][2])]


def test_hard_cut_is_the_largest_frame_change_and_scenes_move(mixed_video):
    video, _, frames = mixed_video
    diffs = frame_diffs(frames)
    cut = video.cut_frames[0]
    inside = np.concatenate([diffs[s + 1 : e] for s, e, _ in video.clean_scenes()])
    assert diffs[cut] > 40 and diffs[cut] > 8 * inside.max()
    # No scene is a still: every consecutive pair inside a clean scene changes (shapes move).
    assert inside.min() > 0.05
    for start, end, _ in video.clean_scenes():
        assert np.abs(frames[end - 1] - frames[start]).mean() > 2.0


def test_gradual_transitions_blend_and_fade_through_black(mixed_video):
    video, _, frames = mixed_video
    (d0, d1), (f0, f1) = video.gradual
    diffs = frame_diffs(frames)
    # A dissolve spreads the change over its frames: no single step looks like a cut.
    assert diffs[d0 : d1 + 1].max() < 0.5 * diffs[video.cut_frames[0]]
    middle = frames[(d0 + d1) // 2]
    before, after = frames[d0 - 1], frames[d1]
    assert np.abs(middle - before).mean() > 15 and np.abs(middle - after).mean() > 15
    # The fade reaches (near) black at its middle and is bright on both sides.
    brightness = [float(f.mean()) for f in frames]
    darkest = int(np.argmin(brightness[f0:f1])) + f0
    assert brightness[darkest] < 12 and abs(darkest - 160) <= 1
    assert brightness[f0 - 1] > 40 or brightness[f1] > 40


def test_background_colour_matches_the_label(mixed_video):
    video, scenes, frames = mixed_video
    for (start, end, label), scene in zip(video.clean_scenes(), scenes):
        assert scene.background in label
        median = np.median(frames[(start + end) // 2].reshape(-1, 3), axis=0)
        assert np.abs(median - np.array(PALETTE[scene.background])).max() < 60, (label, median)


def test_audio_subtitles_and_metadata(mixed_video, tmp_path):
    video, _, _ = mixed_video
    with av.open(str(video.path)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert container.streams.audio[0].codec_context.name == "aac"
    assert video.subtitles_path.read_text().startswith("1\n00:00:00,200 --> 00:00:01,800\nFirst shot\n")
    assert json.loads(video.metadata_path.read_text())["title"] == "Mixed"

    silent = render_video(tmp_path / "silent.mp4", [Scene(1.0, "one"), Scene(1.0, "two")], audio=False,
                          subtitles=[(0.0, 1.0, "hi")], subtitle_format="vtt")
    with av.open(str(silent.path)) as container:
        assert len(container.streams.audio) == 0
    assert silent.subtitles_path.suffix == ".vtt" and silent.subtitles_path.read_text().startswith("WEBVTT")
    assert silent.metadata_path is None
    assert silent.cut_frames == [25] and [s[2] for s in silent.scenes] == ["one", "two"]


@pytest.mark.parametrize(
    "name,codec,fps,expected_codec",
    [("v.webm", "libvpx-vp9", 25.0, "vp9"), ("v.avi", "mpeg4", 12.5, "mpeg4"), ("v.mkv", "libx264", 30000 / 1001, "h264")],
)
def test_other_codecs_and_rates(tmp_path, name, codec, fps, expected_codec):
    scenes = [two_shape_scene(1.0, "blue", "striped"), two_shape_scene(1.2, "orange", "polka-dot")]
    video = render_video(tmp_path / name, scenes, codec=codec, fps=fps, size=(160, 96))
    with av.open(str(video.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == expected_codec
        assert abs(float(stream.average_rate) - fps) < 0.01
        assert len(container.streams.audio) == 1
    frames = decode_rgb(video.path)
    assert len(frames) == video.n_frames == round(2.2 * fps)
    diffs = frame_diffs(frames)
    assert int(np.argmax(diffs)) == video.cut_frames[0] == round(1.0 * fps)


def test_yuv444_and_faststart(tmp_path):
    video = render_video(tmp_path / "x.mp4", [Scene(1.0, "a"), Scene(1.0, "b")], pix_fmt="yuv444p",
                         faststart=True, audio=False)
    data = video.path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    with av.open(str(video.path)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv444p"


def test_invalid_requests_are_rejected(tmp_path):
    two = [Scene(1.0, "a"), Scene(1.0, "b")]
    with pytest.raises(ValueError, match="need 1 transitions"):
        render_video(tmp_path / "a.mp4", two, [])
    with pytest.raises(ValueError, match="even"):
        render_video(tmp_path / "a.mp4", two, size=(321, 180))
    with pytest.raises(ValueError, match="too short"):
        render_video(tmp_path / "a.mp4", two, [Transition("dissolve", 2.5)])
    with pytest.raises(ValueError, match="unknown transition"):
        Transition("wipe")
    with pytest.raises(ValueError, match="unknown background"):
        Scene(1.0, "x", background="chartreuse")
    with pytest.raises(RuntimeError, match="ffmpeg failed"):
        render_video(tmp_path / "a.mp4", two, codec="no-such-encoder")
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_random_scenes_are_distinct_and_deterministic():
    scenes = random_scenes(12, np.random.default_rng(7))
    assert len({s.label for s in scenes}) == 12
    assert all(2.0 <= s.duration_s <= 6.0 for s in scenes)
    for previous, current in zip(scenes, scenes[1:]):
        assert previous.texture != current.texture
        distance = np.linalg.norm(np.subtract(PALETTE[previous.background], PALETTE[current.background]))
        assert distance > 160
    for scene in scenes:
        assert scene.background in scene.label and all(shape.kind in scene.label for shape in scene.shapes)
    again = random_scenes(12, np.random.default_rng(7))
    assert [s.label for s in again] == [s.label for s in scenes]
    assert [s.label for s in random_scenes(12, 8)] != [s.label for s in scenes]


def test_scene_without_shapes_gets_content_from_its_label():
    a, b = Scene(1.0, "first label"), Scene(1.0, "second label")
    assert a.shapes and b.shapes and a.label == "first label"
    assert Scene(1.0, "first label").shapes == a.shapes
    assert Scene(2.0).label == synth.describe_scene(Scene(2.0))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_demo_corpus(tmp_path_factory.mktemp("corpus"), seed=0)


def test_demo_corpus_contents(corpus):
    assert len(corpus) == 4
    kinds = {k for v in corpus for k in v.gradual_kinds}
    assert kinds == {"dissolve", "fade"} and any(v.cut_frames for v in corpus)
    assert any(v.has_audio for v in corpus) and not all(v.has_audio for v in corpus)
    assert any(end - start > 7 * v.fps for v in corpus for start, end, _ in v.scenes)
    for video in corpus:
        assert video.path.name.endswith(".mp4") and video.path.exists()
        with av.open(str(video.path)) as container:
            stream = container.streams.video[0]
            assert sum(1 for p in container.demux(stream) if p.size) == video.n_frames
            assert bool(container.streams.audio) == video.has_audio
        meta = json.loads(video.metadata_path.read_text())
        assert meta["title"] and meta["description"]
        assert meta["ground_truth"]["cut_frames"] == video.cut_frames
        assert [tuple(s) for s in meta["ground_truth"]["scenes"]] == video.scenes
        assert video.subtitles_path.suffix == ".srt"
        parsed = parse_subtitles(video.subtitles_path)
        assert parsed.problems == [] and len(parsed.cues) >= len(video.scenes)
        for start, end, label in video.clean_scenes():  # narration names what each scene shows
            assert label in meta["description"]
            inside = [c for c in parsed.cues if start / video.fps <= c.start_s < c.end_s <= end / video.fps]
            assert inside and all(label in c.text for c in inside)


def test_demo_corpus_is_deterministic(corpus, tmp_path):
    again = make_demo_corpus(tmp_path, n_videos=2, seed=0)
    for first, second in zip(corpus, again):
        assert first.scenes == second.scenes and first.gradual == second.gradual
        assert hashlib.sha256(first.path.read_bytes()).digest() == hashlib.sha256(second.path.read_bytes()).digest()
        assert first.subtitles_path.read_text() == second.subtitles_path.read_text()
    other = make_demo_corpus(tmp_path / "other", n_videos=1, seed=1)
    assert other[0].scenes != corpus[0].scenes
