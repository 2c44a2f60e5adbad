"""Stage: selection (pick each clip's best teacher caption; fine-tune the scorer on human choices)."""
from dagster import Definitions

from panda_dagster.selection.assets import selected_captions, selection_model
from panda_dagster.selection.resources import CaptionScorerResource

defs = Definitions(
    assets=[selected_captions, selection_model],
    resources={"caption_scorer": CaptionScorerResource()},
)
