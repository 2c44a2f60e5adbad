"""What every subcommand needs: the environment's data home, storage and Dagster instance."""

from __future__ import annotations

import os
import sys

from panda_dagster.lib.settings import panda_home


def fail(message: str, code: int = 2) -> int:
    print(f"panda: error: {message}", file=sys.stderr)
    return code


def add_command(subparsers, name: str, handler, *, summary: str, doc: str):
    """The subcommand `name`'s parser, run by `handler` (None: its own subcommands set theirs). `summary` is
    its line in `panda --help`; its `--help` description is `doc` (the command module's docstring) after the
    first paragraph, which names the command for readers of the code."""
    parser = subparsers.add_parser(name, help=summary, description=doc.split("\n\n", 1)[-1].strip())
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def panda_resource():
    from panda_dagster.common.resources import panda_resource_from_env

    return panda_resource_from_env()


def set_instance_env_defaults() -> None:
    """The instance's dagster.yaml reads these; derive them from PANDA_HOME when the shell has not."""
    home = panda_home()
    os.environ.setdefault("PANDA_DAGSTER_STORAGE", str(home / "dagster" / "storage"))
    os.environ.setdefault("PANDA_DAGSTER_ARTIFACTS", str(home / "dagster" / "artifacts"))
    os.environ.setdefault("PANDA_DAGSTER_LOGS", str(home / "dagster" / "logs"))


def dagster_instance():
    from dagster import DagsterInstance

    if not os.environ.get("DAGSTER_HOME"):
        raise RuntimeError(
            "DAGSTER_HOME is not set: run `source .venv/bin/activate` (make setup adds it there) or "
            "`export DAGSTER_HOME=<the panda-dagster checkout>`"
        )
    set_instance_env_defaults()
    return DagsterInstance.get()
