"""`panda calibrate-stitching FOLDER`: stitching thresholds for an image embedder, from your own single-shot
videos.

Every video in FOLDER must be one continuous shot (no cuts). The command samples each at the stitching
rate, embeds the frames, picks the thresholds that keep frames of different videos apart and pieces of one
video together (lib/calibration.py), then checks them end to end: it composes the videos with the
project's generator into two videos with known boundaries (hard cuts; dissolves and fades), splits those
with the chosen values and prints clip purity (clips inside one source) and coverage (source stretches
that got a clip). The values are written as a Dagster run-config snippet for `clips`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from panda_dagster.commands.common import fail

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate-stitching", help="measure stitching thresholds for an image embedder on your single-shot videos",
        description=__doc__)
    p.add_argument("folder", help="folder of single-shot videos (at least 3; more and more varied is better)")
    p.add_argument("--embedder", default="efficientnet_lite0", help="image embedder name (lib/models/embedders.py)")
    p.add_argument("--profile", default="offline", help="models profile the embedder is loaded for")
    p.add_argument("--device", default="auto")
    p.add_argument("--max-s", type=float, default=30.0, help="use at most this many seconds of each video")
    p.add_argument("--out", default="stitching.yaml", help="where to write the config snippet")
    p.add_argument("--fit-mean", default=None,
                   help="efficientnet_lite0 only: also write the mean raw feature of these frames to this .npy "
                        "(the centring the embedder applies; ship it as lib/models/efficientnet_lite0_mean.npy)")
    p.add_argument("--work", default=None, help="folder for the compositions (default: a temporary one)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import tempfile

    folder = Path(args.folder)
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES) if folder.is_dir() else []
    if len(videos) < 3:
        return fail(f"{folder}: need at least 3 single-shot videos ({', '.join(VIDEO_SUFFIXES)}), found {len(videos)}")
    with tempfile.TemporaryDirectory() as tmp:
        result = calibrate(videos, args.embedder, args.profile, args.device, args.max_s, Path(args.work or tmp),
                           fit_mean=Path(args.fit_mean) if args.fit_mean else None, say=print)
    calibration, purities = result
    from panda_dagster.lib.calibration import summarise

    print(summarise(calibration, purities))
    Path(args.out).write_text(calibration.snippet(), encoding="utf-8")
    print(f"config snippet: {args.out}  (use: dagster asset materialize ... --config {args.out})")
    return 0


def calibrate(videos, embedder_name: str, profile: str, device: str, max_s: float, work: Path, *,
              fit_mean: Path | None = None, say=lambda message: None, sample_fps: float = 2.0):
    """(Calibration, {composition name: ClipPurity}) for single-shot `videos`."""
    import dataclasses

    import numpy as np

    from panda_dagster.fixtures.compose import Stretch, compose, decode_stretch
    from panda_dagster.fixtures.synth import Transition
    from panda_dagster.lib.calibration import SourceFrames, choose_thresholds, clip_purity
    from panda_dagster.lib.models.embedders import load_image_embedder
    from panda_dagster.lib.probe import probe_video
    from panda_dagster.lib.video.split import SplitConfig, split_video

    durations = {}
    for video in videos:
        durations[video] = min(max_s, probe_video(str(video)).duration_s)
    model = load_image_embedder(embedder_name, profile, device)
    frames = {v: decode_stretch(Stretch(str(v), 0.0, durations[v] - 0.05), sample_fps, (224, 224)) for v in videos}
    if fit_mean is not None:
        from panda_dagster.lib.models.efficientnet import load_efficientnet

        raw = load_efficientnet(device, centre=False)
        mean = np.mean([raw.raw_features(f).mean(0) for f in frames.values()], axis=0).astype(np.float32)
        np.save(fit_mean, mean)
        say(f"mean raw feature of {len(videos)} sources written to {fit_mean}")
        from panda_dagster.lib.models.efficientnet import EfficientNetEmbedder

        model = EfficientNetEmbedder(model.spec, model.device, raw.network, mean)
    sources = [SourceFrames(v.stem, np.arange(len(f)) / sample_fps, model.embed_images(f)) for v, f in frames.items()]
    say(f"embedded {sum(len(f) for f in frames.values())} frames of {len(videos)} videos with {model.label}")
    calibration = choose_thresholds(sources, f"{embedder_name} ({model.label})", sample_fps=sample_fps)

    config = SplitConfig(max_video_s=None)
    config = dataclasses.replace(config, stitching=dataclasses.replace(config.stitching,
                                                                       **calibration.thresholds.as_dict()))
    min_stretch = config.stitching.min_clip_s / (1 - 2 * config.stitching.trim_frac)
    stretch_s = 6.0
    stretches = [Stretch(str(v), 0.0, min(stretch_s, durations[v] - 0.1)) for v in videos]
    plans = {"cuts": [Transition("cut")] * (len(stretches) - 1),
             "gradual": [Transition(("dissolve", "fade")[i % 2], 1.0) for i in range(len(stretches) - 1)]}
    purities = {}
    for name, transitions in plans.items():
        composition = compose(work / f"{name}.mp4", stretches, transitions)
        result = split_video(composition.path, config, embed_images=model.embed_images, models_label=model.label)
        purities[name] = clip_purity([(c.start_s, c.end_s) for c in result.clips], composition.stretches_s(),
                                     min_stretch)
    return calibration, purities

