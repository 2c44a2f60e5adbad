"""Our vectorised detectors make the same decisions as PySceneDetect's detector objects."""

from __future__ import annotations

import numpy as np
import pytest

from panda_dagster.lib.video.decode import decode_video
from panda_dagster.lib.video.detectors import (
    ContentScorer,
    adaptive_cuts,
    content_cuts,
    flash_filter,
    transnet_cuts,
)


def _scenedetect_filter(flags, min_len, mode):
    from scenedetect.common import FrameTimecode
    from scenedetect.detector import FlashFilter

    filt = FlashFilter(FlashFilter.Mode.MERGE if mode == "merge" else FlashFilter.Mode.SUPPRESS, min_len)
    cuts = []
    for i, flag in enumerate(flags):
        cuts += [tc.frame_num for tc in filt.filter(FrameTimecode(i, fps=25.0), bool(flag))]
    return cuts


@pytest.mark.parametrize("mode", ["merge", "suppress"])
def test_flash_filter_matches_pyscenedetect(mode):
    rng = np.random.default_rng(7)
    for trial in range(60):
        density = [0.02, 0.1, 0.3][trial % 3]
        flags = rng.random(400) < density
        flags[0] = False  # the first frame always scores 0
        min_len = int(rng.integers(1, 20))
        assert flash_filter(flags, min_len, mode) == _scenedetect_filter(flags, min_len, mode), (trial, min_len)


def test_content_and_adaptive_match_pyscenedetect_detectors(cuts_video):
    """Same small frames in, same scores and cuts out as ContentDetector / AdaptiveDetector."""
    from scenedetect.common import FrameTimecode
    from scenedetect.detectors import AdaptiveDetector, ContentDetector

    frames: list[np.ndarray] = []
    scorer = ContentScorer()

    def keep(index, t, bgr):
        frames.append(bgr)
        scorer(index, t, bgr)

    decoded = decode_video(cuts_video.path, [keep], sample_fps=0)
    assert decoded.n_frames == cuts_video.n_frames == len(frames)
    # A low threshold so that the filter logic (not only the obvious cuts) is compared too.
    for threshold in (25.0, 8.0):
        reference = ContentDetector(threshold=threshold, min_scene_len=15)
        ref_cuts = []
        for i, frame in enumerate(frames):
            ref_cuts += [tc.frame_num for tc in reference.process_frame(FrameTimecode(i, fps=25.0), frame)]
        assert content_cuts(scorer.scores, threshold, 15) == ref_cuts
    adaptive = AdaptiveDetector(min_scene_len=15)
    ref_adaptive = []
    for i, frame in enumerate(frames):
        ref_adaptive += [tc.frame_num for tc in adaptive.process_frame(FrameTimecode(i, fps=25.0), frame)]
    assert adaptive_cuts(scorer.scores, 3.0, 15, 2, 15.0) == ref_adaptive
    assert ref_adaptive, "the hard cuts must show up in the adaptive detector too"


def test_content_scores_equal_pyscenedetect_frame_scores(cuts_video):
    from scenedetect.common import FrameTimecode
    from scenedetect.detectors import ContentDetector

    reference = ContentDetector()
    scorer = ContentScorer()
    ours, theirs = [], []

    def both(index, t, bgr):
        scorer(index, t, bgr)
        theirs.append(reference._calculate_frame_score(FrameTimecode(index, fps=25.0), bgr))

    decode_video(cuts_video.path, [both], sample_fps=0)
    np.testing.assert_allclose(scorer.scores, np.asarray(theirs), rtol=1e-9, atol=1e-9)


def test_transnet_cuts_from_probabilities():
    p = np.zeros(100, dtype=np.float32)
    p[29] = 0.9  # hard cut: TransNetV2 flags the last frame of the outgoing shot
    p[60:70] = 0.8  # dissolve over frames 60..69
    p[72] = 0.7  # flicker right after it: closer than min_scene_len, ignored
    cuts, gradual = transnet_cuts(p, 0.5, min_scene_len=15)
    assert cuts == [30, 65]
    assert gradual == [(60, 70)]
    assert transnet_cuts(np.zeros(10), 0.5) == ([], [])
