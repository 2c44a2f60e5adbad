"""`make demo`: render a small corpus with known cuts, subtitles and speech, ingest it, materialize the graph.

Runs everything through the same entry points a user has: the `panda ingest` logic and
`dagster asset materialize` against the instance of the top-level dagster.yaml. The console tells the
story (which models are real, one line per stage with counts and time, where to look); Dagster's own
run logs go to PANDA_HOME/logs/demo-*.log.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

# Unpartitioned assets that summarise all shards, in dependency order.
GLOBAL_STAGES = ["selection_model", "retrieval_benchmark", "dataset_report", "dataset_export"]
# What each stage writes, for the story line: (table, what its rows are).
STAGE_TABLES = {
    "raw_videos": ("videos", "videos probed"),
    "transcripts": ("transcripts", "videos looked at by ASR"),
    "clips": ("clips", "clips"),
    "clip_filters": ("clip_filters", "filter decisions"),
    "teacher_captions": ("teacher_captions", "captions"),
    "selected_captions": ("selected_captions", "selected captions"),
    "eval_metrics": ("eval_metrics", "metric rows"),
}
# Dagster marks some APIs the project uses as beta/preview and warns about them in every step process
# (dozens of identical lines); the demo drops exactly those two warning classes, by name, from the run log
# (a `PYTHONWARNINGS` filter cannot name them: it is applied before site-packages are importable).
QUIET_WARNING = re.compile(r"\b(BetaWarning|PreviewWarning):")
NARRATION = [
    ("First we open the box and take out all the parts.", 0.5),
    ("Then we screw the four legs onto the table top.", 5.0),
    ("Finally we turn the table over and check that it stands.", 10.0),
]


def _say(text: str = "") -> None:
    print(text, flush=True)


def _add_speech(corpus: Path) -> str:
    """A narrated video without subtitles (espeak-ng), so the transcripts stage has speech to recognise."""
    from panda_dagster.fixtures.speech import Sentence, espeak_available, with_speech

    target = corpus / "narrated_no_subtitles.mp4"
    if target.exists():
        return f"speech: {target.name} (spoken with espeak-ng, no subtitles)"
    if not espeak_available():
        return "speech: espeak-ng is not installed, so the corpus has no speech and ASR is skipped " \
               "(`make demo` installs it when run as root with apt-get)"
    source = sorted(corpus.glob("*.mp4"))[0]
    with_speech(source, [Sentence(t, text) for text, t in NARRATION], target)
    return f"speech: {target.name} ({len(NARRATION)} sentences spoken with espeak-ng, no subtitles)"


def _run_dagster(args: list[str], log_path: Path, instance) -> dict[str, float]:
    """Run `dagster asset materialize`, output to `log_path`; seconds per step from the run's records."""
    before = {r.run_id for r in instance.get_runs(limit=20)}
    with open(log_path, "a", encoding="utf-8") as log:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   errors="replace")
        assert process.stdout is not None
        skip_source_line = False
        for line in process.stdout:
            if QUIET_WARNING.search(line):
                skip_source_line = True  # the warning is followed by the source line it points at
                continue
            if skip_source_line and line.startswith((" ", "\t")):
                skip_source_line = False
                continue
            skip_source_line = False
            log.write(line)
        returncode = process.wait()
    seconds: dict[str, float] = {}
    for run in instance.get_runs(limit=20):
        if run.run_id in before:
            continue
        for stat in instance.get_run_step_stats(run.run_id):
            if stat.start_time and stat.end_time:
                seconds[stat.step_key] = seconds.get(stat.step_key, 0.0) + stat.end_time - stat.start_time
    if returncode != 0:
        text = log_path.read_text(encoding="utf-8", errors="replace")
        _say(f"FAILED: dagster exited with {returncode}; see {log_path}")
        tail = text.strip().splitlines()[-15:]
        _say("\n".join(f"    {line}" for line in tail))
        raise SystemExit(returncode)
    return seconds


def _count(catalog, table: str, shards: list[str]) -> int | None:
    try:
        return sum(len(catalog.read_shard(table, s)) for s in shards)
    except KeyError:
        return None


def _stage_detail(catalog, stage: str, shards: list[str]) -> str:
    if stage == "transcripts":
        rows = [t for s in shards for t in catalog.rows("transcripts", s)]
        cues = [c for s in shards for c in catalog.rows("subtitles", s) if c.source == "asr"]
        ok = [t for t in rows if t.status == "ok"]
        return f"; {len(ok)} transcribed ({len(cues)} ASR cues), the others have subtitles or no audio"
    if stage == "clips":
        clips = [c for s in shards for c in catalog.rows("clips", s)]
        narration = sum(1 for c in clips if c.method == "narration")
        return f" ({len(clips) - narration} visual, {narration} narration)"
    return ""


def main() -> int:
    from panda_dagster.commands.common import dagster_instance
    from panda_dagster.common.jobs import SHARD_ASSETS
    from panda_dagster.common.partitions import video_shards
    from panda_dagster.common.resources import panda_resource_from_env
    from panda_dagster.fixtures.synth import make_demo_corpus
    from panda_dagster.lib.ingest import ingest_source
    from panda_dagster.lib.models.profiles import OFFLINE_WARNING, TINY_WARNING, resolve_models_profile
    from panda_dagster.lib.models.roles import profile_roles

    started = time.perf_counter()
    panda = panda_resource_from_env()
    home = panda.home_path
    profile = resolve_models_profile()
    os.environ["PANDA_MODELS"] = profile.name  # child processes agree instead of re-probing the network
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    _say(f"panda-dagster demo  (PANDA_HOME={home})")
    _say(f"models profile: {profile.name} ({profile.reason})")
    for role in profile_roles(profile.name):
        _say(f"  {role.text}")
    if profile.is_tiny:
        _say(f"WARNING: {TINY_WARNING}")
    elif profile.is_offline:
        _say("note: captions and caption scores come from random-weight twins (no trained captioner installs "
             "offline); shot boundaries, stitching, ASR and sentence embeddings are real")

    corpus = home / "demo_corpus"
    if not any(corpus.glob("*.mp4")):
        t0 = time.perf_counter()
        videos = make_demo_corpus(corpus, n_videos=8, seed=0)
        n_cuts = sum(len(v.cut_frames) for v in videos)
        n_gradual = sum(len(v.gradual) for v in videos)
        _say(f"corpus: {len(videos)} rendered videos, {n_cuts} hard cuts, {n_gradual} gradual transitions, "
             f"subtitles  [{time.perf_counter() - t0:.0f} s]")
    _say(_add_speech(corpus))

    instance = dagster_instance()
    plan = ingest_source(corpus, panda.catalog(), panda.storage(), shard_size=5, prefix="demo")
    if plan.keys:
        instance.add_dynamic_partitions(video_shards.name, plan.keys)
    shards = sorted(k for k in instance.get_dynamic_partitions(video_shards.name) if k.startswith("demo-"))
    _say(f"ingest: shards {', '.join(shards)} ({'new' if plan.keys else 'already ingested'})")

    dagster = str(Path(sys.executable).with_name("dagster"))
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    base = [dagster, "asset", "materialize", "-m", "panda_dagster.definitions"]
    # Narration clips from subtitles and from ASR next to the visual clips (mode both): the demo shows both.
    # The rendered corpus is 320x180, below Panda-70M's 240 px resolution bar: the demo lowers the bar so
    # its clips are captioned (a real corpus keeps the default).
    ops = {"clips": {"config": {"mode": "both"}}}
    if "clip_filters" in SHARD_ASSETS:
        ops["clip_filters"] = {"config": {"quality": {"min_short_side": 180}}}
    shard_config = json.dumps({**quiet, "ops": ops})
    log_path = logs / f"demo-{time.strftime('%Y%m%d-%H%M%S')}.log"
    stages = list(SHARD_ASSETS)
    seconds: dict[str, float] = {}
    for shard in shards:
        t0 = time.perf_counter()
        args = [*base, "--config-json", shard_config, "--select", ",".join(stages), "--partition", shard]
        for step, s in _run_dagster(args, log_path, instance).items():
            seconds[step] = seconds.get(step, 0.0) + s
        _say(f"materialized shard {shard}  [{time.perf_counter() - t0:.0f} s]")
    catalog = panda.catalog()
    for stage in stages:
        table, what = STAGE_TABLES.get(stage, (stage, "rows"))
        n = _count(catalog, table, shards)
        count = f"{n} {what}" if n is not None else "done"
        _say(f"  {stage:<20} {count}{_stage_detail(catalog, stage, shards)}  [{seconds.get(stage, 0.0):.1f} s]")
    t0 = time.perf_counter()
    seconds = _run_dagster([*base, "--config-json", json.dumps(quiet), "--select", ",".join(GLOBAL_STAGES)], log_path,
                           instance)
    for stage in GLOBAL_STAGES:
        _say(f"  {stage:<20} done  [{seconds.get(stage, 0.0):.1f} s]")

    _say("")
    _say("where to look:")
    _say(f"  report:    {home / 'reports' / 'dataset_report.html'}")
    _say(f"  catalog:   {catalog.path}  (DuckDB; e.g. .venv/bin/python -c \"import duckdb; print(duckdb.connect("
         f"'{catalog.path}', read_only=True).sql('SELECT video_id, status, language, n_cues FROM transcripts'))\")")
    _say(f"  artifacts: {panda.storage().uri('shards')}")
    _say(f"  run logs:  {log_path}")
    _say("  web UI:    `make ui`, then http://127.0.0.1:3000 (same instance and catalog)")
    if profile.is_tiny:
        _say(f"WARNING: {TINY_WARNING}")
    elif profile.is_offline and profile.requested == "auto":
        _say(f"NOTE: {OFFLINE_WARNING}")
    _say(f"demo finished in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
