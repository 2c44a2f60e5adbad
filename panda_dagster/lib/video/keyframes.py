"""Key frames per clip, chosen among the frames sampled in the decode pass, and their JPEG encoding."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pick_keyframes(sample_frames: Sequence[int], start_frame: int, end_frame: int, k: int) -> list[int]:
    """Positions (into the sample list) of up to `k` samples evenly spread over [start_frame, end_frame).

    Targets sit at the centres of k equal parts of the clip, so the first and last key frames stay away
    from the clip borders; each takes the nearest sample inside the clip, and duplicates are removed.
    """
    frames = np.asarray(sample_frames, dtype=np.int64)
    inside = np.flatnonzero((frames >= start_frame) & (frames < end_frame))
    if k <= 0 or len(inside) == 0:
        return []
    targets = start_frame + (np.arange(k) + 0.5) * (end_frame - start_frame) / k
    chosen: list[int] = []
    for target in targets:
        position = int(inside[np.argmin(np.abs(frames[inside] - target))])
        if position not in chosen:
            chosen.append(position)
    return sorted(chosen)


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    import cv2

    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                              [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()


def keyframe_key(shard: str, clip_id: str, k: int) -> str:
    return f"shards/{shard}/keyframes/{clip_id}_{k}.jpg"
