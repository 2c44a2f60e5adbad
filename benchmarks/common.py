"""What several benchmarks share: where the shared sample videos are."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_videos_dir() -> Path | None:
    """$PANDA_SHARED_VIDEOS, ../shared/videos beside the checkout or /work/shared/videos: the first that holds
    a MANIFEST.tsv."""
    for candidate in (os.environ.get("PANDA_SHARED_VIDEOS"), REPO.parent / "shared" / "videos",
                      Path("/work/shared/videos")):
        if candidate and (Path(candidate) / "MANIFEST.tsv").is_file():
            return Path(candidate)
    return None
