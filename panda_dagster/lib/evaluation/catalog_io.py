"""Reading the stage tables the evaluation needs from the catalog (key frames: `storage.read_artifact`).

The evaluation is analytics over whole tables, so it reads DataFrames (`Catalog.read_shard`), not rows.
A table with no rows for the shard (stage not run yet) or not declared in `lib/schema.py` (a transitional
table that is gone) reads as an empty DataFrame, so a partial pipeline still gets whatever evaluation it can.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from panda_dagster.lib.catalog import Catalog

SHARD_TABLES = ("videos", "clips", "teacher_captions", "selected_captions", "caption_scores", "quarantine",
                "subtitles", "clip_filters")


def read_table(catalog: Catalog, table: str, shard: str) -> pd.DataFrame:
    if table not in catalog.tables:
        return pd.DataFrame()
    return catalog.read_shard(table, shard)


def catalog_shards(catalog: Catalog, tables: tuple[str, ...] = ("clips", "eval_metrics", "videos")) -> list[str]:
    from panda_dagster.lib.evaluation.records import ALL_SHARDS

    found: set[str] = set()
    for table in tables:
        found |= set(catalog.shards(table))
    found.discard(ALL_SHARDS)
    return sorted(found)


@dataclass
class ShardTables:
    shard: str
    videos: pd.DataFrame
    clips: pd.DataFrame
    teacher_captions: pd.DataFrame
    selected_captions: pd.DataFrame
    caption_scores: pd.DataFrame
    quarantine: pd.DataFrame
    subtitles: pd.DataFrame  # table `subtitles`: file/inline cues (part `subtitle`) and ASR cues (part `asr`)
    # The clip filters' decisions (keep, reasons); empty = the filters did not run, every clip is kept.
    clip_filters: pd.DataFrame = field(default_factory=pd.DataFrame)


def load_shard_tables(catalog: Catalog, shard: str) -> ShardTables:
    frames = {t: read_table(catalog, t, shard) for t in SHARD_TABLES}
    return ShardTables(
        shard=shard,
        videos=frames["videos"],
        clips=frames["clips"],
        teacher_captions=frames["teacher_captions"],
        selected_captions=frames["selected_captions"],
        caption_scores=frames["caption_scores"],
        quarantine=frames["quarantine"],
        subtitles=frames["subtitles"],
        clip_filters=frames["clip_filters"],
    )

