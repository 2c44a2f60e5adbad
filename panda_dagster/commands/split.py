"""`panda split VIDEO`: shot detection and clip splitting for one video, without Dagster or a catalog."""

from __future__ import annotations

import argparse
import json
import sys

from panda_dagster.commands.common import fail


def register(subparsers) -> None:
    from panda_dagster.lib.video.detectors import DETECTORS

    p = subparsers.add_parser(
        "split",
        help="detect shots in one video and split it into clips (prints a summary or JSON)",
        description="Decodes VIDEO once at low resolution, detects shots, splits long shots and stitches "
        "them into clips with open_clip image embeddings (Panda-70M recipe; the model comes from "
        "PANDA_MODELS). `shots` is the raw detector segmentation (a cut = the start frame of every shot "
        "after the first); `clips` the stitched result. With --subtitles, clips follow the narration "
        "(HowTo100M recipe) instead.",
    )
    p.add_argument("video")
    p.add_argument("--detector", choices=DETECTORS, default="content",
                   help="content (PySceneDetect ContentDetector, Panda-70M settings; default), adaptive, transnetv2")
    p.add_argument("--threshold", type=float, default=None, help="content detector threshold (default 25)")
    p.add_argument("--min-scene-len", type=int, default=None, help="minimum shot length in frames (default 15)")
    p.add_argument("--no-stitch", action="store_true",
                   help="no embeddings (no model is loaded): clips are the shots >= --min-clip-s, no split quality")
    p.add_argument("--min-clip-s", type=float, default=None, help="drop clips shorter than this (default 2.5)")
    p.add_argument("--max-video-s", type=float, default=None, help="only split the first N seconds")
    p.add_argument("--subtitles", default=None, help="SRT/WebVTT file: narration clips from its cues")
    p.add_argument("--mode", choices=("visual", "narration", "both", "auto"), default=None,
                   help="which clips: visual (default), narration (default with --subtitles), both, auto")
    p.add_argument("--device", default="auto", help="model device: auto, cpu, cuda (default auto)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(handler=run)


def _read_cues(path: str):
    from panda_dagster.lib.subtitles import parse_subtitles

    return parse_subtitles(path).cues


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from panda_dagster.lib.video.split import SplitConfig, split_video

    if not Path(args.video).is_file():
        return fail(f"no such video file: {args.video}")
    overrides = {k: v for k, v in (("threshold", args.threshold), ("min_scene_len", args.min_scene_len),
                                   ("min_clip_s", args.min_clip_s), ("max_video_s", args.max_video_s)) if v is not None}
    mode = args.mode or ("narration" if args.subtitles else "visual")
    config = SplitConfig(detector=args.detector, stitch=not args.no_stitch, device=args.device, mode=mode,
                         **overrides)
    cues = None
    if args.subtitles:
        try:
            cues = _read_cues(args.subtitles)
        except Exception as exc:  # any unreadable subtitle file is a user error here
            return fail(f"cannot read subtitles {args.subtitles}: {exc}")
    embed, label = None, None
    if config.stitch:  # embeddings: stitching, and the split-quality figure of every clip
        from panda_dagster.lib.models.openclip import load_open_clip

        model = load_open_clip(device=args.device)
        embed, label = model.embed_images, model.label
        if model.profile == "tiny":
            from panda_dagster.lib.video.split import TINY_STILL_NOTE, for_tiny_embeddings

            config = for_tiny_embeddings(config)
            print(f"panda split: stitching with {label}; {TINY_STILL_NOTE}", file=sys.stderr)
    result = split_video(args.video, config, embed_images=embed, models_label=label, cues=cues)
    if args.json:
        print(json.dumps(result.to_json_dict(), indent=1))
    else:
        print(f"{result.video}: {result.n_frames} frames, {result.fps:.3f} fps, {result.duration_s:.2f} s, "
              f"detector {result.detector}")
        print(f"shots ({len(result.shots)}), cuts at frames {result.cuts}")
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
