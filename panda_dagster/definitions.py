"""The Dagster code location: every stage contributes its own `defs`; resources are shared."""

from dagster import Definitions

from panda_dagster.clips import definitions as clips
from panda_dagster.common.jobs import shard_pipeline_job
from panda_dagster.common.resources import panda_resource_from_env
from panda_dagster.common.schedules import catch_up_backfill, nightly_catch_up
from panda_dagster.evaluation import definitions as evaluation
from panda_dagster.ingest import definitions as ingest
from panda_dagster.selection import definitions as selection
from panda_dagster.teachers import definitions as teachers

defs = Definitions.merge(
    ingest.defs,
    clips.defs,
    teachers.defs,
    selection.defs,
    evaluation.defs,
    Definitions(
        jobs=[shard_pipeline_job, catch_up_backfill],
        schedules=[nightly_catch_up],
        resources={"panda": panda_resource_from_env()},
    ),
)
