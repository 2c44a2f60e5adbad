"""Reading the stage tables the evaluation needs from the catalog, and key frames from storage.

Tables written by other stages may be missing (stage not run yet, or not registered in this process):
they read as empty DataFrames, so a partial pipeline still gets whatever evaluation it can.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from panda_dagster.lib.catalog import Catalog, registered_tables

log = logging.getLogger(__name__)

SHARD_TABLES = ("videos", "clips", "teacher_captions", "selected_captions", "caption_scores", "quarantine",
                "subtitles", "asr_subtitles")


def read_table(catalog: Catalog, table: str, shard: str) -> pd.DataFrame:
    if table not in registered_tables():
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
    subtitles: pd.DataFrame  # file/inline cues and ASR cues together


def load_shard_tables(catalog: Catalog, shard: str) -> ShardTables:
    frames = {t: read_table(catalog, t, shard) for t in SHARD_TABLES}
    subs = [f for f in (frames["subtitles"], frames["asr_subtitles"]) if not f.empty]
    return ShardTables(
        shard=shard,
        videos=frames["videos"],
        clips=frames["clips"],
        teacher_captions=frames["teacher_captions"],
        selected_captions=frames["selected_captions"],
        caption_scores=frames["caption_scores"],
        quarantine=frames["quarantine"],
        subtitles=pd.concat(subs, ignore_index=True) if subs else pd.DataFrame(),
    )


def read_uri(storage, uri: str) -> bytes:
    """Bytes of an artifact given by the URI a stage stored (a storage URI or a local path)."""
    probe = storage.uri("x")
    base = probe[:-1]
    if uri.startswith(base):
        return storage.get_bytes(uri[len(base):])
    path = Path(uri)
    if path.is_file():
        return path.read_bytes()
    raise FileNotFoundError(f"artifact not found: {uri}")
