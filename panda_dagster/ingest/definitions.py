from dagster import Definitions

from panda_dagster.ingest.assets import raw_videos
from panda_dagster.ingest.sensors import inbox_sensor

defs = Definitions(assets=[raw_videos], sensors=[inbox_sensor])
