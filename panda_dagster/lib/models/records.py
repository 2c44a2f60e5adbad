"""Catalog rows of the models home.

- `keyframe_embeddings`: one row per (clip, image model): the embeddings of the clip's stored key
  frames, so each clip is embedded once per model and revision, whichever stage asks first (`clips`,
  `selected_captions`, `retrieval_benchmark`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from panda_dagster.lib.records import utcnow


@dataclass
class KeyframeEmbedding:
    clip_id: str
    shard: str
    model_id: str  # the image embedder's ModelSpec.model_id
    revision: str  # ... and ModelSpec.revision: rows are reused only when both match
    dim: int  # embedding width D
    n_frames: int  # key frames embedded, in the clip's key-frame order
    embedding: list[float]  # n_frames * dim values, frame after frame (each frame's vector unit-norm)
    created_at: dt.datetime = field(default_factory=utcnow)
