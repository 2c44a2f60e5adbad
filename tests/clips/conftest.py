"""Generated videos shared by the splitting tests (rendered once per session)."""

from __future__ import annotations

import subprocess

import pytest


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, capture_output=True)


@pytest.fixture(scope="session")
def cuts_video(tmp_path_factory):
    """320x180 H.264 at 25 fps: 8 scenes joined by hard cuts, one dissolve and one fade through black."""
    from panda_dagster.fixtures.synth import Scene, Transition, render_video

    folder = tmp_path_factory.mktemp("split_videos")
    backgrounds = ["blue", "orange", "green", "magenta", "gray", "cyan", "brown", "yellow"]
    textures = ["plain", "striped", "checkered", "gradient", "polka-dot", "wavy", "plain", "striped"]
    scenes = [Scene(1.6 + 0.4 * (i % 3), background=bg, texture=tx, seed=i, pan_px=(20.0 * (i % 2), 8.0))
              for i, (bg, tx) in enumerate(zip(backgrounds, textures))]
    kinds = ["cut", "cut", "dissolve", "cut", "fade", "cut", "cut"]
    transitions = [Transition(k, 0.0 if k == "cut" else 0.6) for k in kinds]
    return render_video(folder / "cuts.mp4", scenes, transitions, fps=25.0, size=(320, 180), audio=True)


@pytest.fixture(scope="session")
def long_shot_video(tmp_path_factory):
    """Two long shots (12 s and 9 s) with one cut: exercises long-shot splitting and stitching."""
    from panda_dagster.fixtures.synth import Scene, render_video

    folder = tmp_path_factory.mktemp("split_long")
    scenes = [Scene(12.0, background="blue", texture="striped", seed=1, pan_px=(60.0, 0.0)),
              Scene(9.0, background="orange", texture="checkered", seed=2, pan_px=(0.0, 30.0))]
    return render_video(folder / "long.mp4", scenes, fps=20.0, size=(256, 144), audio=False)


@pytest.fixture(scope="session")
def render_pan_then_cut():
    """Renders the two-shot video several tests use: a blue striped shot panning `pan_px` pixels to the
    right over `pan_s` seconds, a hard cut, an orange checkered still shot of `still_s` (20 fps, no audio)."""
    from panda_dagster.fixtures.synth import Scene, Transition, render_video

    def render(path, pan_s: float, still_s: float, *, pan_px: float, size: tuple[int, int]):
        scenes = [Scene(pan_s, background="blue", texture="striped", seed=1, pan_px=(pan_px, 0.0)),
                  Scene(still_s, background="orange", texture="checkered", seed=2)]
        return render_video(path, scenes, [Transition("cut")], fps=20.0, size=size, audio=False)

    return render


@pytest.fixture(scope="session")
def ffmpeg_run():
    return ffmpeg
