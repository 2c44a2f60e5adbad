"""Stage: transcripts (speech recognition before clips)."""
from dagster import Definitions

from panda_dagster.transcripts.assets import transcripts
from panda_dagster.transcripts.resources import AsrModelResource

defs = Definitions(assets=[transcripts], resources={"asr_model": AsrModelResource()})
