"""The Dagster code location: every stage contributes its own `defs`; resources are shared."""

import atexit
import gc

from dagster import Definitions

from panda_dagster.clips import definitions as clips
from panda_dagster.common.jobs import IN_PROCESS_UNLESS_CONFIGURED, shard_pipeline_job
from panda_dagster.common.kubernetes import run_executor
from panda_dagster.common.resources import panda_resource_from_env
from panda_dagster.common.schedules import ASSET_GRAPH_RESOURCE, asset_graph_resource, catch_up_backfill, nightly_catch_up
from panda_dagster.evaluation import definitions as evaluation
from panda_dagster.filters import definitions as filters
from panda_dagster.export import definitions as export
from panda_dagster.ingest import definitions as ingest
from panda_dagster.selection import definitions as selection
from panda_dagster.teachers import definitions as teachers
from panda_dagster.transcripts import definitions as transcripts

# A process that ran steps (CLI run, run worker, step process) ends with the interpreter's cyclic garbage
# collection over everything it imported and loaded (Dagster, torch, models): 3-18 s of every
# `dagster asset materialize` on 2 cores (benchmarks/pipeline_bench.py, phase `run end`). Freezing the
# heap at exit skips that pass; the OS frees the memory, and files, catalog and event-log writes are
# closed and committed before exit.
atexit.register(gc.freeze)


def _code_location() -> Definitions:
    # One `Definitions` at module scope: Dagster's module loading refuses a second one.
    stages = Definitions.merge(
        ingest.defs,
        transcripts.defs,
        clips.defs,
        filters.defs,
        teachers.defs,
        selection.defs,
        evaluation.defs,
        export.defs,
    )
    return Definitions.merge(
        stages,
        Definitions(
            jobs=[shard_pipeline_job, catch_up_backfill],
            schedules=[nightly_catch_up],
            executor=run_executor(stages, default=IN_PROCESS_UNLESS_CONFIGURED),
            resources={"panda": panda_resource_from_env(),
                       ASSET_GRAPH_RESOURCE: asset_graph_resource(lambda: defs.get_repository_def().asset_graph)},
        ),
    )


defs = _code_location()
