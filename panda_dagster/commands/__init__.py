"""Subcommands of the `panda` CLI (each module exposes `register(subparsers)`)."""
