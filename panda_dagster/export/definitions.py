"""Stage: export."""
from dagster import Definitions

from panda_dagster.export.assets import dataset_export

defs = Definitions(assets=[dataset_export])
