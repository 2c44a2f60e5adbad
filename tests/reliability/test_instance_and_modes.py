"""The instance config works with only DAGSTER_HOME set, both configs monitor runs, and catalog and
artifact files honour the umask (readable by the group, not 0600 from mkstemp)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.records import IngestedVideo
from panda_dagster.lib.storage import LocalStorage

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _bare_env(**extra: str) -> dict[str, str]:
    """A shell that never ran `.venv/bin/activate`: no PANDA_* variables at all."""
    return {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8", **extra}


def _project_instance(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    return home


def test_dagster_yaml_works_with_only_dagster_home_set(tmp_path):
    home = _project_instance(tmp_path)
    script = ("from dagster import DagsterInstance\n"
              "with DagsterInstance.get() as i:\n"
              "    print(type(i.event_log_storage).__name__, i.run_monitoring_enabled, type(i.run_launcher).__name__)\n"
              "    print(i.storage_directory())\n")
    proc = subprocess.run([str(BIN / "python"), "-c", script], env=_bare_env(DAGSTER_HOME=str(home)), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kinds, artifacts = proc.stdout.splitlines()[-2:]
    assert kinds == "PandaSqliteEventLogStorage True PandaRunLauncher"
    assert (home / ".panda" / "dagster" / "storage" / "history" / "runs.db").is_file()
    assert Path(artifacts).is_relative_to(home / ".panda" / "dagster" / "artifacts")
    # The dagster CLI itself, too.
    cli = subprocess.run([str(BIN / "dagster"), "run", "list"], env=_bare_env(DAGSTER_HOME=str(home)), cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr[-3000:]


def test_panda_home_and_explicit_variables_place_the_instance(tmp_path):
    home = _project_instance(tmp_path)
    script = "from dagster import DagsterInstance\nDagsterInstance.get().dispose()\n"
    data = tmp_path / "data"
    proc = subprocess.run([str(BIN / "python"), "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env=_bare_env(DAGSTER_HOME=str(home), PANDA_HOME=str(data)), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (data / "dagster" / "storage" / "history" / "runs.db").is_file()
    explicit = tmp_path / "explicit-storage"
    proc = subprocess.run([str(BIN / "python"), "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env=_bare_env(DAGSTER_HOME=str(home), PANDA_HOME=str(data),
                                        PANDA_DAGSTER_STORAGE=str(explicit)), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (explicit / "history" / "runs.db").is_file()


def test_both_instance_configs_monitor_runs():
    for path, resumes in ((REPO / "dagster.yaml", 0), (REPO / "docker" / "dagster.yaml", 1)):
        config = yaml.safe_load(path.read_text())
        monitoring = config["run_monitoring"]
        assert monitoring["enabled"] is True, path
        assert monitoring["start_timeout_seconds"] > 0 and monitoring["cancel_timeout_seconds"] > 0
        assert monitoring["free_slots_after_run_end_seconds"] > 0
        # The Docker launcher resumes a dead run's container; the local launcher cannot, it fails + retries.
        assert monitoring["max_resume_run_attempts"] == resumes, path
        assert config["run_retries"]["enabled"] is True


@pytest.mark.parametrize("umask, expected", [(0o002, 0o664), (0o022, 0o644), (0o077, 0o600)])
def test_catalog_and_artifact_files_honour_the_umask(tmp_path, umask, expected):
    import datetime as dt

    previous = os.umask(umask)
    try:
        catalog = Catalog(tmp_path / "home")
        now = dt.datetime.now(dt.timezone.utc)
        catalog.replace_shard("ingested", "s-1", [IngestedVideo("v", "s-1", "/x.mp4", "src", None, now)])
        storage = LocalStorage(tmp_path / "home" / "artifacts")
        artifact = Path(storage.put_bytes("shards/s-1/a.bin", b"x"))
        source = tmp_path / "src.bin"
        source.write_bytes(b"y")
        copied = Path(storage.put_file("shards/s-1/b.bin", source))
    finally:
        os.umask(previous)
    parquet = sorted((tmp_path / "home" / "lake" / "ingested").glob("*/*.parquet"))
    assert parquet
    for path in [*parquet, artifact, copied]:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    assert catalog.rows("ingested", "s-1")[0].video_id == "v"
