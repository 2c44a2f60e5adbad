"""Stage: clip_filters."""
from dagster import Definitions

from panda_dagster.filters.assets import clip_filters

defs = Definitions(assets=[clip_filters])
