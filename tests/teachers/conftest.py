"""Fixtures for the teacher tests: a generated video with audio, its key frames, and clip inputs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from panda_dagster.lib.ids import clip_id
from panda_dagster.lib.records import Cue
from panda_dagster.lib.teachers.inputs import ClipInput, VideoInput

# Three one-second colour segments per clip span: frames sampled inside a span show its colour.
SEGMENT_COLOURS = ("red", "green", "blue", "yellow", "white", "black")
CLIP_SPANS = ((0.0, 2.0), (2.0, 4.0), (4.0, 6.0))


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def render_colour_video(path: Path, colours=SEGMENT_COLOURS, seconds_each: float = 1.0, audio: bool = True) -> Path:
    """One solid colour per second (320x240, 25 fps, H.264) plus a sine tone: exact, checkable content."""
    ff = _ffmpeg()
    args = [ff, "-y", "-loglevel", "error"]
    for colour in colours:
        args += ["-f", "lavfi", "-i", f"color=c={colour}:size=320x240:rate=25:duration={seconds_each}"]
    n = len(colours)
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={n * seconds_each}"]
    concat = "".join(f"[{i}:v]" for i in range(n)) + f"concat=n={n}:v=1:a=0[v]"
    args += ["-filter_complex", concat, "-map", "[v]"]
    if audio:
        args += ["-map", f"{n}:a", "-c:a", "aac"]
    args += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25", str(path)]
    subprocess.run(args, check=True)
    return path


def extract_jpeg(video: Path, at_s: float, out: Path) -> Path:
    subprocess.run([_ffmpeg(), "-y", "-loglevel", "error", "-ss", f"{at_s}", "-i", str(video), "-frames:v", "1",
                    "-q:v", "3", str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def colour_video(tmp_path_factory) -> Path:
    return render_colour_video(tmp_path_factory.mktemp("teacher_video") / "colours.mp4")


@pytest.fixture(scope="session")
def clip_fixture(colour_video, tmp_path_factory):
    """(clips, videos, cues) for three 2-second clips of the colour video, each with two key frames."""
    frames_dir = tmp_path_factory.mktemp("keyframes")
    video_id = "colours-0001"
    clips = []
    for start, end in CLIP_SPANS:
        cid = clip_id(video_id, start, end)
        keyframes = tuple(str(extract_jpeg(colour_video, t, frames_dir / f"{cid}_{i}.jpg"))
                          for i, t in enumerate((start + 0.5, start + 1.5)))
        clips.append(ClipInput(cid, video_id, start, end, keyframes))
    videos = {video_id: VideoInput(video_id, str(colour_video), title="Painting the garage door",
                                   description="Our weekend project: we sand and paint the old garage door.",
                                   has_audio=True, duration_s=6.0)}
    cues = [
        Cue(0.2, 1.8, "first we sand the door", video_id),
        Cue(2.1, 3.9, "now the primer goes on", video_id),
    ]
    return clips, videos, cues
