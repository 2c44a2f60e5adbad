"""Catalog table `clips`: one row per clip, replaced per shard by the `clips` asset."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from panda_dagster.lib.records import utcnow


@dataclass
class ClipRecord:
    clip_id: str  # panda_dagster.lib.ids.clip_id(video_id, start_s, end_s)
    video_id: str
    shard: str
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int  # exclusive
    method: str  # 'stitched', 'shot' or 'narration'
    n_shots_merged: int
    detector: str  # content | adaptive | transnetv2
    narration: str | None  # subtitle text of a narration clip
    keyframe_uris: list[str]  # storage URIs of the clip's key frames (JPEG)
    clip_uri: str | None  # storage URI of the cut clip file, when clip files are written
    split_quality: float | None  # max running embedding distance inside the clip (lower = more consistent)
    models_label: str  # embedding model that stitched / scored (TINY_LABEL for tiny models)
    created_at: dt.datetime = field(default_factory=utcnow)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

