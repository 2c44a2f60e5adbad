"""Work a killed run finished is not redone: teacher captions are checkpointed per batch and ASR
transcripts per video (`Catalog.add_checkpoint`); SIGKILL a shard part-way, run it again, and only the
rest is generated; the tables end up complete, once per clip (video), with no checkpoint left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from slow_models import SlowAsr, SlowRunner, run_teachers, run_transcripts

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.probe import ProbeResult
from panda_dagster.lib.records import VideoRecord
from panda_dagster.lib.video.records import ClipRecord

SHARD = "ckpt"
HERE = Path(__file__).parent


def _video(video_id: str, path: Path, has_audio: bool) -> VideoRecord:
    probe = ProbeResult("mp4", "h264", "yuv420p", 1.0, 25.0, 25, 320, 180, False, has_audio, int(has_audio),
                        "aac" if has_audio else None, 1, "x", 1.0, None)
    return VideoRecord(video_id, SHARD, str(path), str(path), probe, None, None, None, None, 0)


def _kill_after_checkpoints(home: Path, stage: str, table: str, at_least: int) -> None:
    """Run the stage in its own process (0.4 s per model call); SIGKILL it once `at_least` checkpoint
    files of `table` exist."""
    folder = home / "lake" / table / "_checkpoint" / SHARD
    proc = subprocess.Popen([sys.executable, str(HERE / "slow_models.py"), stage, str(home), SHARD, "0.4"],
                            env={**os.environ, "PYTHONPATH": str(HERE)}, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(folder.glob("*.parquet"))) >= at_least:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the stage ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_teacher_batches_finished_before_a_kill_are_not_captioned_again(tmp_path):
    home = tmp_path / "home"
    catalog = Catalog(home)
    catalog.replace_shard("videos", SHARD, [_video("v", tmp_path / "v.mp4", False)])
    clips = [ClipRecord(f"clip-{i:02d}", "v", SHARD, i * 3.0, i * 3.0 + 2.5, i * 75, i * 75 + 62, "shot", 1,
                        "hybrid", None, [f"/k/{i}.jpg"], None, None, "test") for i in range(12)]
    catalog.replace_shard("clips", SHARD, clips)

    _kill_after_checkpoints(home, "teachers", "teacher_captions", at_least=2)
    saved = {c.clip_id for c in catalog.checkpoint_rows("teacher_captions", SHARD)}
    assert 4 <= len(saved) < 12 and catalog.rows("teacher_captions", SHARD) == []  # batches of 2
    assert catalog.query("SELECT count(*) AS n FROM teacher_captions")["n"].iloc[0] == 0  # not in the views

    SlowRunner.calls.clear()
    run = run_teachers(str(home), SHARD, 0.0)
    assert sorted(SlowRunner.calls) == sorted({c.clip_id for c in clips} - saved)  # only the rest
    (stats,) = run.result.stats
    assert (stats.n_cached, stats.n_generated) == (len(saved), 12 - len(saved))
    rows = catalog.rows("teacher_captions", SHARD)
    assert sorted(r.clip_id for r in rows) == [c.clip_id for c in clips]  # each clip once
    assert catalog.checkpoint_rows("teacher_captions", SHARD) == []
    assert not list((home / "lake" / "teacher_captions" / "_checkpoint" / SHARD).glob("*.parquet"))
    # The checkpoint files were never visible as table rows (DuckDB views, `rows`, `shards`).
    assert catalog.shards("teacher_captions") == [SHARD]


def test_videos_transcribed_before_a_kill_are_not_recognised_again(tmp_path):
    from panda_dagster.fixtures.synth import Scene, render_video

    home = tmp_path / "home"
    catalog = Catalog(home)
    videos = []
    for i in range(6):
        path = render_video(tmp_path / f"v{i}.mp4", [Scene(1.0, seed=i)], audio=True).path
        videos.append(_video(f"v{i}", Path(path), True))
    catalog.replace_shard("videos", SHARD, videos)

    _kill_after_checkpoints(home, "transcripts", "transcripts", at_least=2)
    saved = {t.video_id for t in catalog.checkpoint_rows("transcripts", SHARD)}
    assert 2 <= len(saved) < 6 and catalog.rows("transcripts", SHARD) == []

    SlowAsr.calls.clear()
    result = run_transcripts(str(home), SHARD, 0.0)
    assert len(SlowAsr.calls) == 6 - len(saved) and result.n_reused == len(saved)
    rows = catalog.rows("transcripts", SHARD)
    assert sorted(t.video_id for t in rows) == [f"v{i}" for i in range(6)] and {t.status for t in rows} == {"ok"}
    cues = catalog.rows("subtitles", SHARD)
    assert sorted((c.video_id, c.cue_index) for c in cues) == [(f"v{i}", k) for i in range(6) for k in (0, 1)]
    assert catalog.checkpoint_rows("transcripts", SHARD) == [] and catalog.checkpoint_rows("subtitles", SHARD) == []
