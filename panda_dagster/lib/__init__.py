"""Pure library code: video I/O, detectors, model wrappers, catalog. Never imports Dagster."""
