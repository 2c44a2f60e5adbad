"""Importing this module registers every catalog table of the project."""

from panda_dagster.lib import ingest, records  # noqa: F401  ingested; videos, subtitles, quarantine
from panda_dagster.lib.evaluation import records as evaluation_records  # noqa: F401  eval_metrics, retrieval_results
from panda_dagster.lib.selection import records as selection_records  # noqa: F401  selected_captions, caption_scores, caption_preferences
from panda_dagster.lib.teachers import records as teacher_records  # noqa: F401  teacher_captions, teacher_failures, asr_subtitles, asr_transcripts
from panda_dagster.lib.video import records as video_records  # noqa: F401  clips
