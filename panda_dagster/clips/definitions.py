"""Stage: clips (shot detection, semantic stitching, narration clips)."""
from dagster import Definitions

from panda_dagster.clips.assets import clips
from panda_dagster.clips.resources import ClipEmbedderResource

defs = Definitions(assets=[clips], resources={"clip_embedder": ClipEmbedderResource()})
