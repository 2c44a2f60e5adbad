"""Catalog table `clip_filters`: one row per clip with every filter score, the decision and its reasons.

A shard without rows here means every clip is kept (readers work before the filters have run).
Scores are None where a filter did not run or had nothing to measure (no key frames, too few frames).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from panda_dagster.lib.records import utcnow


@dataclass
class ClipFilterRecord:
    clip_id: str
    video_id: str
    shard: str
    keep: bool
    reasons: list[str]  # reason codes, empty when kept (see lib/filters/registry.REASONS)
    duplicate_of: str | None  # the kept clip of this clip's duplicate group (reason `duplicate`)
    text: str | None  # text read on the key frames (OCR), when any
    duration_s: float
    motion_camera: float | None  # camera speed, share of the frame diagonal per second
    motion_object: float | None  # share of the textured picture moving on its own
    motion_jitter: float | None  # spread of the camera speed between frame pairs (not a drop reason)
    changing_share: float | None  # share of 0.25 s intervals in which the picture changes
    text_area: float | None  # share of a key frame covered by text boxes (largest)
    nsfw: float | None  # open_nsfw probability (mean over key frames)
    sharpness: float | None  # variance of the Laplacian (median over key frames)
    brightness: float | None  # mean luma 0-255
    blown_share: float | None  # share of pixels at luma >= 250
    short_side: float | None  # source video short side, pixels
    duplicate_distance: float | None  # smallest pHash distance to another clip (bits of 64)
    duplicate_cosine: float | None  # largest key-frame embedding cosine to another clip
    phashes: list[int]  # pHash of each key frame (compared across shards)
    filters: list[str]  # the filters that ran
    created_at: dt.datetime = field(default_factory=utcnow)


SCORE_COLUMNS = ("motion_camera", "motion_object", "motion_jitter", "changing_share", "text_area", "nsfw",
                 "sharpness", "brightness", "blown_share", "short_side", "duplicate_distance", "duplicate_cosine")
