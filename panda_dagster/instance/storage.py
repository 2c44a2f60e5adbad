"""Instance storages with default folders, so the project's dagster.yaml works with only DAGSTER_HOME set.

Each folder is, in order: its PANDA_DAGSTER_<NAME> variable (what `.venv/bin/activate` and the
Makefile export), else $PANDA_HOME/dagster/<name>, else $DAGSTER_HOME/.panda/dagster/<name>. The
SQLite storage's event log also claims pool slots through `dead_runs.SlotClaimsFreeDeadOwners`, so a
step waiting for the `gpu` slot frees it when the run holding it has died.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import Field, StringSource
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._core.storage.root import LocalArtifactStorage
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from dagster._utils import mkdir_p

from panda_dagster.instance.dead_runs import SlotClaimsFreeDeadOwners

FOLDERS = {"storage": "PANDA_DAGSTER_STORAGE", "artifacts": "PANDA_DAGSTER_ARTIFACTS", "logs": "PANDA_DAGSTER_LOGS"}


def instance_folder(name: str) -> str:
    """Where the instance keeps `name` (storage, artifacts, logs) when dagster.yaml gives no base_dir."""
    if override := os.environ.get(FOLDERS[name]):
        return str(Path(override).expanduser().resolve())
    if panda_home := os.environ.get("PANDA_HOME"):
        return str(Path(panda_home).expanduser().resolve() / "dagster" / name)
    dagster_home = os.environ.get("DAGSTER_HOME")
    if not dagster_home:
        raise RuntimeError(
            f"the Dagster instance needs a folder for its {name}: set DAGSTER_HOME (the folder holding "
            f"dagster.yaml), or PANDA_HOME, or {FOLDERS[name]}"
        )
    return str(Path(dagster_home).expanduser().resolve() / ".panda" / "dagster" / name)


_OPTIONAL_BASE_DIR = {"base_dir": Field(StringSource, is_required=False)}


class PandaSqliteEventLogStorage(SlotClaimsFreeDeadOwners, SqliteEventLogStorage):
    """SQLite event log whose pool-slot claims free slots held by dead runs (see dead_runs)."""


class PandaSqliteStorage(DagsterSqliteStorage):
    """`storage: sqlite` with a default base_dir and the dead-owner-aware event log."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PandaSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def config_type(cls):
        return _OPTIONAL_BASE_DIR

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        base_dir = config_value.get("base_dir") or instance_folder("storage")
        mkdir_p(base_dir)
        return cls(base_dir, inst_data=inst_data)


class PandaArtifactStorage(LocalArtifactStorage):
    @classmethod
    def config_type(cls):
        return _OPTIONAL_BASE_DIR

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(config_value.get("base_dir") or instance_folder("artifacts"), inst_data=inst_data)


class PandaComputeLogManager(LocalComputeLogManager):
    @classmethod
    def config_type(cls):
        return {**super().config_type(), **_OPTIONAL_BASE_DIR}

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        config = dict(config_value)
        config["base_dir"] = config.get("base_dir") or instance_folder("logs")
        return cls(inst_data=inst_data, **config)
