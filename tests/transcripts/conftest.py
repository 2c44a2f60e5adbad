"""Videos with known speech (espeak-ng) for the ASR tests, rendered once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from panda_dagster.fixtures.speech import Sentence, espeak_available, with_speech

NARRATION = [
    Sentence(0.5, "First we open the box and take out the parts."),
    Sentence(5.0, "Then we screw the legs onto the table top."),
    Sentence(10.0, "Finally we turn the table over and check that it stands."),
]


@pytest.fixture(scope="session")
def espeak():
    if not espeak_available():
        pytest.skip("espeak-ng is not installed (Debian package espeak-ng; `make test` installs it as root)")


@pytest.fixture(scope="session")
def narrated_video(tmp_path_factory, espeak):
    """15 s, one scene, no subtitles, the NARRATION sentences spoken at their times.
    Returns (path, spoken sentences with the spans where they are heard)."""
    from panda_dagster.fixtures.synth import Scene, render_video

    folder = tmp_path_factory.mktemp("speech")
    silent = render_video(folder / "silent.mp4", [Scene(15.0, background="green", texture="wavy", seed=3)],
                          fps=10.0, size=(160, 90), audio=False)
    out = folder / "narrated.mp4"
    spoken = with_speech(silent.path, NARRATION, out)
    silent.path.unlink()
    return Path(out), spoken
