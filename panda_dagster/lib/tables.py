"""Importing this module registers every catalog table of the project."""

from panda_dagster.lib import ingest, records  # noqa: F401  ingested; videos, subtitles, quarantine
