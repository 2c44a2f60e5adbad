"""Video-LLM frame sampling: one decord open of the video per clip (the first path), one decord open per
video for all its clips (the second), and `VideoFrameSampler` as the video_llm teacher uses it now (one
PyAV open per video decoded forward, reference frames only, frame threads).

    .venv/bin/python benchmarks/frame_sampling_bench.py [VIDEO] [--clip-s 4] [--frames 8] [--max-clips 60]

Clips are consecutive `--clip-s` spans from the start; each gets `--frames` frames at the centres of equal
slices (as `prompts.frame_timestamps`). Prints opens and wall time of both paths.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from panda_dagster.lib.teachers.frames import VideoFrameSampler, _sample_decord, _target_size
from panda_dagster.lib.teachers.prompts import frame_timestamps

DEFAULT_VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "videos" / "moviepy_trailer_bbb.mp4"


def old_per_clip(path: str, times: list[float], max_side: int = 768) -> list:
    """The previous implementation: a probe open for the frame size, then a scaled open, per clip."""
    import decord
    from PIL import Image

    probe = decord.VideoReader(path, num_threads=1)
    height, width = probe[0].shape[:2]
    del probe
    w, h = _target_size(width, height, max_side)
    reader = decord.VideoReader(path, width=w, height=h, num_threads=1)
    fps = float(reader.get_avg_fps()) or 25.0
    indices = [min(len(reader) - 1, max(0, int(round(t * fps)))) for t in times]
    return [Image.fromarray(f[..., :3]) for f in reader.get_batch(indices).asnumpy()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    parser.add_argument("--clip-s", type=float, default=4.0)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--max-clips", type=int, default=60)
    args = parser.parse_args()
    import decord

    duration = len(decord.VideoReader(args.video)) / float(decord.VideoReader(args.video).get_avg_fps())
    spans = [(s, min(duration, s + args.clip_s)) for s in
             [i * args.clip_s for i in range(int(duration // args.clip_s))]][: args.max_clips]
    times = [frame_timestamps(a, b, args.frames) for a, b in spans]

    started = time.perf_counter()
    for t in times:
        old_per_clip(args.video, t)
    old_s = time.perf_counter() - started

    started = time.perf_counter()
    with VideoFrameSampler() as sampler:
        for t in times:
            _sample_decord(sampler, args.video, t)
    new_s = time.perf_counter() - started
    started = time.perf_counter()
    with VideoFrameSampler() as forward:
        for t in times:
            forward.sample(args.video, t)
    forward_s = time.perf_counter() - started
    print(f"{Path(args.video).name}: {len(spans)} clips x {args.frames} frames")
    print(f"  open per clip (old): {2 * len(spans)} opens, {old_s:.2f} s ({len(spans) / old_s:.1f} clips/s)")
    print(f"  one open per video:  {sampler.opens} open,  {new_s:.2f} s ({len(spans) / new_s:.1f} clips/s)")
    print(f"  forward PyAV (now):  {forward.opens} open,  {forward_s:.2f} s ({len(spans) / forward_s:.1f} clips/s)")


if __name__ == "__main__":
    main()
