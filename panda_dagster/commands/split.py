"""`panda split VIDEO`: shot detection and clip splitting for one video, without Dagster or a catalog.

Decodes VIDEO once at low resolution, detects shots, splits long shots and stitches them into clips with
image embeddings (Panda-70M recipe; the model comes from PANDA_MODELS: open_clip, or the trained
EfficientNet-Lite0 in the offline profile). `shots` is the raw detector segmentation (a cut = the start
frame of every shot after the first); `clips` the stitched result. With --subtitles, clips follow the
narration (HowTo100M recipe) instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from panda_dagster.commands.common import add_command, fail


def register(subparsers) -> None:
    from panda_dagster.lib.video.detectors import DEFAULT_DETECTOR, DETECTORS, detector_class

    p = add_command(subparsers, "split", run, doc=__doc__,
                    summary="detect shots in one video and split it into clips (prints a summary or JSON)")
    p.add_argument("video")
    p.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR,
                   help="; ".join(f"{name}: {detector_class(name).summary}" for name in DETECTORS)
                   + f" (default {DEFAULT_DETECTOR})")
    p.add_argument("--threshold", type=float, default=None, help="the detector's threshold (its own default)")
    p.add_argument("--min-scene-len", type=int, default=None,
                   help="minimum shot length in frames, for detectors that have one (default 15)")
    p.add_argument("--no-stitch", action="store_true",
                   help="no embeddings (no model is loaded): clips are the shots >= --min-clip-s, no split quality")
    p.add_argument("--min-clip-s", type=float, default=None, help="drop clips shorter than this (default 2.5)")
    p.add_argument("--max-video-s", type=float, default=None, help="only split the first N seconds")
    p.add_argument("--subtitles", default=None, help="SRT/WebVTT file: narration clips from its cues")
    p.add_argument("--mode", choices=("visual", "narration", "both", "auto"), default=None,
                   help="which clips: visual (default), narration (default with --subtitles), both, auto")
    p.add_argument("--device", default="auto", help="model device: auto, cpu, cuda (default auto)")
    p.add_argument("--embedder", default="auto", help="image embedder for stitching: auto (efficientnet_lite0 in "
                   "the offline profile, else open_clip), open_clip, efficientnet_lite0 (default auto)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")


def _read_cues(path: str):
    from panda_dagster.lib.subtitles import parse_subtitles

    return parse_subtitles(path).cues


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from panda_dagster.lib.video.split import SplitConfig, split_video

    if not Path(args.video).is_file():
        return fail(f"no such video file: {args.video}")
    mode = args.mode or ("narration" if args.subtitles else "visual")
    config = SplitConfig(detector=args.detector, stitch=not args.no_stitch, mode=mode, max_video_s=args.max_video_s)
    if args.min_clip_s is not None:
        config.stitching.min_clip_s = args.min_clip_s
    own = getattr(config.detectors, args.detector)  # the chosen detector's parameters
    for name, value in (("threshold", args.threshold), ("min_scene_len", args.min_scene_len),
                        ("device", args.device)):
        if value is not None and hasattr(own, name):
            setattr(own, name, value)
        elif value is not None and name != "device":  # device also picks the embedder's device
            return fail(f"--{name.replace('_', '-')} does not apply to detector {args.detector} (its parameters: "
                        f"{', '.join(f.name for f in dataclasses.fields(own))})")
    cues = None
    if args.subtitles:
        try:
            cues = _read_cues(args.subtitles)
        except Exception as exc:  # any unreadable subtitle file is a user error here
            return fail(f"cannot read subtitles {args.subtitles}: {exc}")
    embed, label = None, None
    if config.stitch:  # embeddings: stitching, and the split-quality figure of every clip
        from panda_dagster.lib.video.split import load_split_embedder

        # The profile's frame embedder (EfficientNet-Lite0 in `offline`, else open_clip) with its own distances.
        model, config, note = load_split_embedder(config, device=args.device, embedder=args.embedder)
        embed, label = model.embed_images, model.label
        if note:  # random weights: the still filter is off
            print(f"panda split: stitching with {label}; {note}", file=sys.stderr)
    result = split_video(args.video, config, embed_images=embed, models_label=label, cues=cues)
    if args.json:
        print(json.dumps(result.to_json_dict(), indent=1))
    else:
        print(f"{result.video}: {result.n_frames} frames, {result.fps:.3f} fps, {result.duration_s:.2f} s, "
              f"detector {result.detector}")
        print(f"shots ({len(result.shots)}), boundaries at frames "
              + ", ".join(str(b.frame) if b.kind == "cut" else f"{b.frame} (gradual {b.start}-{b.end})"
                          for b in result.boundaries))
        for clip in result.clips:
            quality = "" if clip.split_quality is None else f"  quality {clip.split_quality:.3f}"
            text = f"  \"{clip.narration[:60]}\"" if clip.narration else ""
            print(f"  clip {clip.start_s:8.3f} - {clip.end_s:8.3f} s  frames {clip.start_frame}-{clip.end_frame}"
                  f"  {clip.method} x{clip.n_shots_merged}{quality}{text}")
        for item in result.dropped:
            print(f"  dropped {item.kind} {item.start_s:.3f}-{item.end_s:.3f} s: {item.reason}")
        for note in (result.partial_reason, result.no_clips_reason):
            if note:
                print(f"  note: {note}")
    if result.n_frames == 0:
        return fail(result.no_clips_reason or "nothing decoded", code=1)
    return 0
