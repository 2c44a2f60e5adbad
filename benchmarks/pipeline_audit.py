"""Counts, not timings: does the pipeline decode each video once, load each model once and talk to the
catalog per shard rather than per row?

Runs every per-shard asset of one small shard through the Dagster Python API in this process
(`execute_in_process`, one asset at a time so the counts can be told apart per stage) with three meters:
- video opens: every `av.open` of a source video, per stage (probing, audio for ASR, the clips decode
  pass, any later re-decode: clip filters' motion frames, the video-LLM teacher's frames). Long videos
  decoded in parallel segments open the file in worker processes, which this meter does not see, so the
  default shard holds short videos only;
- model loads: the process-wide model cache's `loaded model` log lines (lib/models/cache.py), per stage;
  a model loaded twice in one process, or once per clip, shows here;
- catalog calls: `Catalog.rows/read_shard/query/replace_shard/delete_shard/shards` per stage, against
  the number of clips (calls growing with the clips = per-row round trips).

Usage: python benchmarks/pipeline_audit.py [--videos DIR] [--limit N] [--profile tiny|offline]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from pipeline_bench import BIN, build_manifest, default_videos_dir, home_env, say  # noqa: E402

AUDIT_VIDEOS = 6
CATALOG_METHODS = ("rows", "read_shard", "query", "replace_shard", "delete_shard", "shards")


class Meters:
    def __init__(self, video_paths: set[str]):
        self.stage = "setup"
        self.video_paths = video_paths
        self.opens: dict[str, Counter] = defaultdict(Counter)
        self.models: dict[str, Counter] = defaultdict(Counter)
        self.catalog: dict[str, Counter] = defaultdict(Counter)

    def install(self) -> None:
        import av

        from panda_dagster.lib.catalog import Catalog

        meters = self
        real_open = av.open

        def counting_open(file, *args, **kwargs):
            name = str(file)
            if name in meters.video_paths or Path(name).name in {Path(p).name for p in meters.video_paths}:
                meters.opens[meters.stage][Path(name).name] += 1
            return real_open(file, *args, **kwargs)

        av.open = counting_open
        for method in CATALOG_METHODS:
            real = getattr(Catalog, method)

            def wrapper(self, *args, _real=real, _name=method, **kwargs):
                meters.catalog[meters.stage][_name] += 1
                return _real(self, *args, **kwargs)

            setattr(Catalog, method, wrapper)

        class ModelLoads(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.getMessage().startswith("loaded model"):
                    meters.models[meters.stage][str(record.args[0] if record.args else record.getMessage())[:90]] += 1

        logger = logging.getLogger("panda_dagster.lib.models.cache")
        logger.setLevel(logging.INFO)
        logger.addHandler(ModelLoads())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=AUDIT_VIDEOS)
    parser.add_argument("--profile", default="tiny")
    args = parser.parse_args()
    videos_dir = args.videos or default_videos_dir()
    if videos_dir is None:
        say("no shared videos folder found")
        return 1
    work = Path(tempfile.mkdtemp(prefix="panda-audit-"))
    try:
        # Short videos only (see the module docstring): everything but the two long ones.
        short = work / "videos"
        short.mkdir()
        for p in sorted(videos_dir.iterdir()):
            if p.suffix in {".mp4", ".webm", ".mkv", ".mov", ".avi"} and p.stat().st_size < 5_000_000 \
                    and "one-by-one" not in p.name:
                os.symlink(p, short / p.name)
        manifest, n = build_manifest(short, 1, work / "manifest", args.limit)
        home = work / "home"
        env = home_env(home, args.profile, Path(tempfile.gettempdir()) / "panda-bench-models")
        os.environ.update({k: v for k, v in env.items() if k.startswith(("PANDA_", "DAGSTER_"))})
        out = subprocess.run([str(BIN / "panda"), "ingest", str(manifest), "--shard-size", str(n), "--prefix", "audit"],
                             env=env, capture_output=True, text=True, check=True)
        shard = out.stdout.split()[0]
        video_paths = {str(p.resolve()) for p in short.iterdir()} | {str(p) for p in short.iterdir()}

        from dagster import AssetKey, DagsterInstance

        from panda_dagster.common.jobs import SHARD_ASSETS
        from panda_dagster.definitions import defs
        from panda_dagster.lib.catalog import Catalog

        meters = Meters(video_paths)
        meters.install()
        instance = DagsterInstance.get()
        job = defs.get_implicit_global_asset_job_def()
        for asset in SHARD_ASSETS:
            meters.stage = asset
            result = job.execute_in_process(instance=instance, partition_key=shard,
                                            asset_selection=[AssetKey(asset)], raise_on_error=False)
            if not result.success:
                say(f"{asset}: FAILED (see the run in {home})")
        n_clips = len(Catalog(home).rows("clips", shard))
        say(f"audit: {n} videos, {n_clips} clips, profile {args.profile}")
        say(f"{'stage':18s} {'video opens (distinct videos)':30s} {'model loads':12s} {'catalog calls':14s} detail")
        for asset in SHARD_ASSETS:
            opens = meters.opens.get(asset, Counter())
            models = meters.models.get(asset, Counter())
            calls = meters.catalog.get(asset, Counter())
            detail = ", ".join(f"{k} {v}" for k, v in calls.most_common())
            twice = [m for m, c in models.items() if c > 1]
            say(f"{asset:18s} {sum(opens.values()):5d} ({len(opens):3d} videos){'':13s} {sum(models.values()):5d}"
                f"{'':7s} {sum(calls.values()):6d}{'':8s} {detail}"
                + (f"; loaded more than once: {twice}" if twice else ""))
        decode_stages = [a for a in SHARD_ASSETS if a not in ("raw_videos", "transcripts", "clips") and meters.opens.get(a)]
        say("decode shared: " + ("yes (no stage after clips opens a source video)" if not decode_stages else
                                 f"NO: {', '.join(decode_stages)} open source videos again"))
        all_models = Counter()
        for c in meters.models.values():
            all_models.update(c)
        reloaded = {m: c for m, c in all_models.items() if c > 1}
        say("models loaded once per process: " + ("yes" if not reloaded else f"NO: {reloaded}"))
        per_row = [a for a in SHARD_ASSETS if sum(meters.catalog.get(a, Counter()).values()) > max(20, 2 * n_clips)]
        say("catalog calls per shard, not per row: " + ("yes" if not per_row else f"NO: {', '.join(per_row)}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
