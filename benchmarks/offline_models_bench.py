"""Load time and CPU speed of the `offline` profile's trained models, plus the quality numbers of issue 11:
ASR word error rate (espeak-ng speech, mdn_friday.mp4 vs its WebVTT) and HowTo100M held-out R@K on
offline features against chance.

    .venv/bin/python benchmarks/offline_models_bench.py [--shared ../shared/videos] [--threads 2]

Prints one line per measurement. Needs espeak-ng for the speech set (skipped with a note otherwise).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "videos"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from panda_dagster.fixtures.speech import Sentence, espeak_available, with_speech
    from panda_dagster.fixtures.synth import Scene, _SceneRenderer, describe_scene, random_scenes, render_video
    from panda_dagster.lib.models.efficientnet import load_efficientnet
    from panda_dagster.lib.models.minilm import load_minilm
    from panda_dagster.lib.subtitles import parse_subtitles
    from panda_dagster.lib.transcripts.audio import SAMPLE_RATE, load_audio
    from panda_dagster.lib.transcripts.cues import word_error_rate
    from panda_dagster.lib.transcripts.whisper import load_asr

    shared = Path(args.shared)
    asr, s = _timed(lambda: load_asr("offline", "cpu", args.threads))
    print(f"asr {asr.label}: load {s:.2f} s (incl. sha256 check)")
    friday = shared / "mdn_friday.mp4"
    if friday.is_file():
        audio = load_audio(str(friday))
        result, s = _timed(lambda: asr.transcribe(audio))
        ref = " ".join(c.text for c in parse_subtitles(shared / "mdn_friday.vtt").cues)
        hyp = " ".join(c.text for c in result.cues)
        print(f"asr mdn_friday.mp4: WER {word_error_rate(ref, hyp):.3f}, {len(audio) / SAMPLE_RATE:.1f} s audio in "
              f"{s:.2f} s ({len(audio) / SAMPLE_RATE / s:.1f}x real time)")
    if espeak_available():
        sentences = [Sentence(0.5, "First we open the box and take out the parts."),
                     Sentence(5.0, "Then we screw the legs onto the table top."),
                     Sentence(10.0, "Finally we turn the table over and check that it stands."),
                     Sentence(15.0, "Now the paint goes on with a wide brush."),
                     Sentence(20.0, "Let it dry for an hour before you sit down.")]
        with tempfile.TemporaryDirectory() as tmp:
            silent = render_video(Path(tmp) / "s.mp4", [Scene(25.0, background="green", seed=3)], fps=5.0,
                                  size=(64, 36), audio=False)
            with_speech(silent.path, sentences, Path(tmp) / "speech.mp4")
            audio = load_audio(str(Path(tmp) / "speech.mp4"))
        result, s = _timed(lambda: asr.transcribe(audio))
        wer = word_error_rate(" ".join(x.text for x in sentences), " ".join(c.text for c in result.cues))
        print(f"asr espeak-ng speech: WER {wer:.3f}, 25 s audio in {s:.2f} s ({25 / s:.1f}x real time)")
    else:
        print("asr espeak-ng speech: skipped (espeak-ng not installed)")

    effnet, s = _timed(lambda: load_efficientnet("cpu"))
    print(f"frame embedder {effnet.label}: load {s:.2f} s")
    scenes = random_scenes(200, rng=7)
    frames = []
    for scene in scenes:
        renderer = _SceneRenderer(scene, 224, 224, int(scene.duration_s * 10), 10.0)
        frames += [renderer.frame(0.2 * scene.duration_s), renderer.frame(0.8 * scene.duration_s)]
    video, s = _timed(lambda: effnet.embed_images(frames))
    print(f"frame embedder: {len(frames)} frames in {s:.2f} s ({len(frames) / s:.1f} frames/s)")
    video = video.reshape(len(scenes), 2, -1).max(axis=1)

    minilm, s = _timed(lambda: load_minilm("cpu"))
    print(f"sentence embedder {minilm.label}: load {s:.2f} s (incl. importing sentence-transformers)")
    texts = [describe_scene(x) for x in scenes]
    text, s = _timed(lambda: minilm.embed_texts(texts))
    print(f"sentence embedder: {len(texts)} sentences in {s:.2f} s ({len(texts) / s:.0f}/s)")

    from panda_dagster.lib.evaluation.howto100m import JointEmbeddingConfig, evaluate_pairs, train_joint_embedding

    held = np.arange(len(scenes)) % 5 == 0
    model, _ = train_joint_embedding(video[~held], text[~held], [str(i) for i in np.flatnonzero(~held)],
                                     JointEmbeddingConfig(epochs=60), texts=[t for t, h in zip(texts, held) if not h])
    scores = evaluate_pairs(model, video[held], text[held])
    n = int(held.sum())
    for direction, sc in scores.items():
        print(f"howto100m offline features {direction}: R@1 {sc.r1:.1f} R@5 {sc.r5:.1f} R@10 {sc.r10:.1f} "
              f"(chance {100 / n:.1f} / {500 / n:.1f} / {1000 / n:.1f}, {n} held-out clips), median rank "
              f"{sc.median_rank:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
