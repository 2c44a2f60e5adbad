"""Split quality: how consistent a clip looks from start to end.

Panda-70M rates splits by the maximum "running" LPIPS between consecutive frames of a clip: one large
jump means a cut or transition was missed. The same idea here uses image embeddings of the frames sampled
during decoding: the largest L2 distance between consecutive samples (unit vectors, 0..2). Lower means
more consistent; None when the clip has fewer than two samples.
"""

from __future__ import annotations

import numpy as np


def max_running_distance(embeddings: np.ndarray) -> float | None:
    vectors = np.asarray(embeddings, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) < 2:
        return None
    return float(np.linalg.norm(np.diff(vectors, axis=0), axis=1).max())


def mean_quality(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None
