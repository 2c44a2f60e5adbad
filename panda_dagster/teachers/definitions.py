"""Stage: teachers (captions from several cross-modality teacher models)."""
from dagster import Definitions

from panda_dagster.teachers.assets import teacher_captions
from panda_dagster.teachers.resources import teacher_resources

defs = Definitions(assets=[teacher_captions], resources=teacher_resources())
