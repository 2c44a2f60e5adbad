"""Deterministic identifiers: the same input always yields the same id, so re-runs replace rows."""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path

# Fixed namespace for every id this project derives (never change it: ids would all move).
PANDA_NAMESPACE = uuid.UUID("5b1d3c1e-4f0a-5c8e-9a57-70d2a9e0b0a7")


def clip_id(video_id: str, start_s: float, end_s: float) -> str:
    """uuid5 of the video id and the span rounded to milliseconds."""
    return str(uuid.uuid5(PANDA_NAMESPACE, f"{video_id}:{start_s:.3f}-{end_s:.3f}"))


def slug(text: str, max_len: int = 48) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return (s[:max_len].rstrip("-")) or "video"


def video_id_for_uri(uri: str, stem: str) -> str:
    """Readable and unique: slug of the file stem plus a short hash of the full URI."""
    digest = hashlib.sha1(uri.encode("utf-8")).hexdigest()[:10]
    return f"{slug(stem)}-{digest}"


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (checkpoints, packaged weights, exports)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
