"""The `panda` command line. Each subcommand lives in panda_dagster/commands/<name>.py and exposes
`register(subparsers)`; the chosen subcommand's handler returns an exit code."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = ["ingest", "split", "label", "report", "export", "calibrate"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="panda", description="panda-dagster: curate video-text datasets")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"panda_dagster.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
