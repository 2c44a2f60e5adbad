"""Every table of the metadata catalog, declared once: its name, its row dataclass, its part column.

`lib/catalog.py` imports this module, so a `Catalog` knows every table without anything having to be
imported first; reading or writing a table that is not listed here raises. A new table is one line in
`TABLES` (its row dataclass lives with its domain, in a light `records` module that imports nothing heavy).

Columns are the row dataclass' fields in order; a field whose type is itself a dataclass (e.g.
`VideoRecord.probe: ProbeResult`) is stored flat, its fields becoming columns of the table, so SQL reads
`SELECT codec, duration_s FROM videos` while Python code gets `video.probe.codec` back from `Catalog.rows`.
"""

from __future__ import annotations

from dataclasses import dataclass

from panda_dagster.lib.evaluation.records import EvalMetricRecord, RetrievalResultRecord
from panda_dagster.lib.fetch import FetchRecord
from panda_dagster.lib.filters.records import ClipFilterRecord
from panda_dagster.lib.models.records import KeyframeEmbedding
from panda_dagster.lib.records import Cue, IngestedVideo, QuarantineRecord, VideoRecord
from panda_dagster.lib.selection.records import CaptionPreference, CaptionScore, SelectedCaption
from panda_dagster.lib.teachers.records import TeacherCaption, TeacherFailure
from panda_dagster.lib.transcripts.records import Transcript
from panda_dagster.lib.video.records import ClipRecord


@dataclass(frozen=True)
class Table:
    name: str
    row_type: type  # a dataclass with a `shard` field; one instance per row
    # Column that splits a shard's rows into parts replaced independently (e.g. quarantine rows per
    # stage, cues per source); None = one file per shard.
    part_column: str | None = None


TABLES: dict[str, Table] = {t.name: t for t in (
    Table("ingested", IngestedVideo),  # which shard each video was assigned to (the registry of shards)
    Table("videos", VideoRecord),  # raw_videos: one probed video per row
    Table("subtitles", Cue, part_column="source"),  # every cue: part `subtitle` (raw_videos), `asr` (transcripts)
    Table("quarantine", QuarantineRecord, part_column="stage"),
    Table("fetches", FetchRecord),  # raw_videos: every remote source (URL) fetched: status, attempts, error
    Table("transcripts", Transcript),  # transcripts: one row per video (ASR model, revision, language, status)
    Table("clips", ClipRecord),
    Table("clip_filters", ClipFilterRecord),  # clip_filters: keep/reasons and every filter score per clip
    Table("keyframe_embeddings", KeyframeEmbedding, part_column="model_id"),  # per clip and image model
    Table("teacher_captions", TeacherCaption),
    Table("teacher_failures", TeacherFailure),
    Table("selected_captions", SelectedCaption),
    Table("caption_scores", CaptionScore),
    Table("caption_preferences", CaptionPreference, part_column="label_batch"),
    Table("eval_metrics", EvalMetricRecord),
    Table("retrieval_results", RetrievalResultRecord),
)}
