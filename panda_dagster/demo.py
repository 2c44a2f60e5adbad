"""`make demo`: render a small corpus with known cuts and subtitles, ingest it, materialize the graph.

Runs everything through the same entry points a user has: the `panda ingest` logic and
`dagster asset materialize` against the instance of the top-level dagster.yaml.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

PARTITIONED_STAGES = ["raw_videos", "clips", "teacher_captions", "selected_captions", "eval_metrics"]
# Unpartitioned assets that summarise all shards, in dependency order.
GLOBAL_STAGES = ["selection_model", "retrieval_benchmark", "dataset_report"]


def _banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def main() -> int:
    from panda_dagster.commands.common import dagster_instance
    from panda_dagster.common.partitions import video_shards
    from panda_dagster.common.resources import panda_resource_from_env
    from panda_dagster.lib.ingest import ingest_source
    from panda_dagster.lib.models.profiles import TINY_WARNING, resolve_models_profile
    from panda_dagster.lib.synth import make_demo_corpus

    started = time.perf_counter()
    panda = panda_resource_from_env()
    home = panda.home_path
    profile = resolve_models_profile()
    # Child processes must agree with this decision instead of re-probing the network.
    os.environ["PANDA_MODELS"] = profile.name
    _banner(f"panda-dagster demo (PANDA_HOME={home})")
    print(f"models: {profile.name} ({profile.reason})")
    if profile.is_tiny:
        print(f"WARNING: {TINY_WARNING}")

    corpus = home / "demo_corpus"
    if not any(corpus.glob("*.mp4")):
        _banner("rendering the demo corpus (scenes with known cuts, dissolves, fades, subtitles)")
        videos = make_demo_corpus(corpus, n_videos=8, seed=0)
        for v in videos:
            print(f"  {v.path.name}: {v.n_frames} frames, cuts at {v.cut_frames}, gradual {v.gradual}")

    _banner("ingest")
    instance = dagster_instance()
    plan = ingest_source(corpus, panda.catalog(), panda.storage(), shard_size=4, prefix="demo")
    if plan.keys:
        instance.add_dynamic_partitions(video_shards.name, plan.keys)
    shards = sorted(k for k in instance.get_dynamic_partitions(video_shards.name) if k.startswith("demo-"))
    print(f"new shards: {plan.keys or 'none (already ingested)'}; demo shards: {shards}")

    dagster = str(Path(sys.executable).with_name("dagster"))
    # INFO keeps the run log readable (the default console logger prints every DEBUG engine event).
    quiet = json.dumps({"loggers": {"console": {"config": {"log_level": "INFO"}}}})
    base = [dagster, "asset", "materialize", "-m", "panda_dagster.definitions", "--config-json", quiet]
    for shard in shards:
        _banner(f"materialize {', '.join(PARTITIONED_STAGES)} for shard {shard}")
        subprocess.run([*base, "--select", ",".join(PARTITIONED_STAGES), "--partition", shard], check=True)
    _banner(f"materialize {', '.join(GLOBAL_STAGES)}")
    subprocess.run([*base, "--select", ",".join(GLOBAL_STAGES)], check=True)

    _banner("done")
    catalog = panda.catalog()
    tables = ["videos", "subtitles", "quarantine", "clips", "teacher_captions", "selected_captions", "eval_metrics"]
    counts = catalog.query("SELECT " + ", ".join(f"(SELECT count(*) FROM {t}) AS {t}" for t in tables)).iloc[0]
    print(f"catalog: {catalog.path}  ({', '.join(f'{k}={v}' for k, v in counts.items())})")
    print(f"  query it: .venv/bin/python -c \"import duckdb; print(duckdb.connect('{catalog.path}', read_only=True).sql('SELECT * FROM videos'))\"")
    report = home / "reports" / "dataset_report.html"
    print(f"report: {report}")
    print(f"artifacts: {panda.storage().uri('shards')}")
    print("web UI: `make ui`, then open http://127.0.0.1:3000 (same instance and catalog)")
    if profile.is_tiny:
        print(f"WARNING: {TINY_WARNING}")
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
