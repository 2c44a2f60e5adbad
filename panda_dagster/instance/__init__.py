"""The Dagster instance the project's dagster.yaml configures: storages whose folders default from
PANDA_HOME / DAGSTER_HOME (no variable has to be set), and dead-run detection (a run whose process is
gone is marked failed and its pool slots are freed, with or without a daemon).

Imported by every Dagster process that opens the instance (CLI, webserver, daemon, run workers), so
nothing here imports more than Dagster itself."""
