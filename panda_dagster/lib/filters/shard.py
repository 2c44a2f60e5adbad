"""One shard through the filters, catalog in and out: what the `clip_filters` asset calls.

Reads the shard's clips (key frames from storage through the one artifact reader), its videos (paths for
the motion/still frames, resolution), trained key-frame embeddings where the catalog has them, and the
kept clips of the other shards (for cross-shard duplicates); replaces the shard's `clip_filters` rows.
Idempotent: a re-run replaces the shard's rows; stored motion frames are only read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from panda_dagster.lib.filters.base import ClipInputs
from panda_dagster.lib.filters.decisions import TABLE
from panda_dagster.lib.filters.duplicates import Fingerprint, fingerprints_from_rows, mean_embedding
from panda_dagster.lib.filters.registry import FiltersParams
from panda_dagster.lib.filters.run import MotionFrameSource, ShardFilterResult, filter_shard

EMBEDDINGS_TABLE = "keyframe_embeddings"
RANDOM_MODEL_PREFIX = "tiny/"  # lib/models/openclip.model_spec: ids of the random-weight twins


@dataclass
class ShardInputs:
    clips: list[ClipInputs]
    video_paths: dict[str, str]
    others: list[Fingerprint] = field(default_factory=list)
    embedding_model: str | None = None  # model id whose key-frame embeddings were used


def decode_image(data: bytes) -> np.ndarray:
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("not a decodable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _embeddings(catalog, shard: str, use: bool) -> tuple[dict[str, np.ndarray], str | None]:
    """clip_id -> unit mean embedding, from the trained model with the most rows in this shard (random
    twins, model ids `tiny/...`, never count)."""
    if not use:
        return {}, None
    rows = [r for r in catalog.rows(EMBEDDINGS_TABLE, shard) if not r.model_id.startswith(RANDOM_MODEL_PREFIX)]
    if not rows:
        return {}, None
    counts = Counter(r.model_id for r in rows)
    model = min(counts, key=lambda m: (-counts[m], m))
    out = {}
    for row in rows:
        if row.model_id == model and row.dim > 0:
            vector = mean_embedding(np.asarray(row.embedding, dtype=np.float64).reshape(-1, row.dim))
            if vector is not None:
                out[row.clip_id] = vector
    return out, model


def _other_shards(catalog, shard: str, model: str | None) -> list[Fingerprint]:
    """Kept clips of every other shard already filtered (one SQL read of the catalog views)."""
    if not [s for s in catalog.shards(TABLE) if s != shard]:
        return []
    frame = catalog.query(
        "SELECT clip_id, shard, duration_s, sharpness, phashes FROM clip_filters WHERE keep AND shard <> ?", [shard])
    rows = frame.to_dict("records")
    embeddings: dict[str, np.ndarray] = {}
    if model and rows:
        found = catalog.query(f"SELECT clip_id, dim, embedding FROM {EMBEDDINGS_TABLE} WHERE model_id = ? AND "
                              "shard <> ?", [model, shard])
        for r in found.to_dict("records"):
            vector = mean_embedding(np.asarray(r["embedding"], dtype=np.float64).reshape(-1, int(r["dim"])))
            if vector is not None:
                embeddings[str(r["clip_id"])] = vector
    for r in rows:
        r["phashes"] = [int(h) for h in r["phashes"]] if r["phashes"] is not None else []
    return fingerprints_from_rows(rows, embeddings)


def shard_inputs(catalog, shard: str, read_artifact: Callable[[str], bytes], *, use_embeddings: bool,
                 across_shards: bool) -> ShardInputs:
    videos = {v.video_id: v for v in catalog.rows("videos", shard)}
    embeddings, model = _embeddings(catalog, shard, use_embeddings)

    def read_image(uri: str) -> np.ndarray:
        return decode_image(read_artifact(uri))

    clips = []
    for row in catalog.rows("clips", shard):
        video = videos.get(row.video_id)
        probe = getattr(video, "probe", video)
        clips.append(ClipInputs(
            clip_id=row.clip_id, video_id=row.video_id, shard=shard, start_s=float(row.start_s),
            end_s=float(row.end_s), video_width=int(getattr(probe, "width", 0) or 0),
            video_height=int(getattr(probe, "height", 0) or 0), keyframe_uris=list(row.keyframe_uris or []),
            read_image=read_image, embedding=embeddings.get(row.clip_id)))
    paths = {v.video_id: str(v.local_path) for v in videos.values()}
    others = _other_shards(catalog, shard, model) if across_shards else []
    return ShardInputs(clips, paths, others, model)


def filter_catalog_shard(catalog, storage, shard: str, params: FiltersParams, *,
                         read_artifact: Callable[[str], bytes], use_embeddings: bool = True) -> ShardFilterResult:
    """Filter one shard and replace its `clip_filters` rows."""
    inputs = shard_inputs(catalog, shard, read_artifact, use_embeddings=use_embeddings,
                          across_shards=params.duplicates.across_shards and "duplicates" in params.enabled)

    def read_stored(key: str) -> bytes | None:
        return storage.get_bytes(key) if storage.exists(key) else None

    result = filter_shard(inputs.clips, params, other_shards=inputs.others,
                          frames=MotionFrameSource(inputs.video_paths, read_stored))
    if inputs.embedding_model:
        result.notes.append(f"duplicates: pHash and key-frame embeddings of {inputs.embedding_model}")
    elif not use_embeddings:
        result.notes.append("duplicates: key-frame embeddings not used (tiny models profile: random weights)")
    catalog.replace_shard(TABLE, shard, result.rows)
    return result


def quarantine_rows(result: ShardFilterResult, video_uris: dict[str, str], shard: str, stage: str) -> list:
    """One quarantine row per clip a filter failed on (the clip is kept, unfiltered by that filter)."""
    from panda_dagster.lib.records import QuarantineRecord

    by_clip = {r.clip_id: r for r in result.rows}
    return [QuarantineRecord(shard, video_uris.get(by_clip[c].video_id, by_clip[c].video_id), stage,
                             f"clip {c} kept, not filtered by the failing filter", by_clip[c].video_id,
                             "kept_partial", detail=error) for c, error in result.errors.items()]


def dropped_preview(result: ShardFilterResult) -> list[dict]:
    return [{"clip_id": r.clip_id[:12], "video_id": r.video_id, "reasons": ", ".join(r.reasons),
             "duplicate_of": (r.duplicate_of or "")[:12], "text": (r.text or "")[:40]}
            for r in result.rows if not r.keep]


def models_used(params: FiltersParams) -> dict[str, str]:
    from panda_dagster.lib.filters.nsfw import NSFW_MODEL_ID
    from panda_dagster.lib.filters.text import OCR_MODEL_ID

    return {name: model for name, model in (("text", OCR_MODEL_ID), ("nsfw", NSFW_MODEL_ID)) if name in params.enabled}
