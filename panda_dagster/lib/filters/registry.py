"""Every clip filter, registered here once (one line each), and the parameters of all of them.

Per-clip filters score each clip on its own; `duplicates` compares clips with each other and runs last.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from panda_dagster.lib.filters.base import ClipFilter
from panda_dagster.lib.filters.duplicates import DUPLICATE, DuplicateParams
from panda_dagster.lib.filters.motion import CAMERA_MOTION_ONLY, STATIC, MotionFilter, MotionParams
from panda_dagster.lib.filters.nsfw import NSFW, NsfwFilter, NsfwParams
from panda_dagster.lib.filters.quality import BLURRY, DARK, LOW_RESOLUTION, OVEREXPOSED, QualityFilter, QualityParams
from panda_dagster.lib.filters.still import STILL, StillFilter, StillParams
from panda_dagster.lib.filters.text import TEXT_OVERLAY, TextFilter, TextParams

CLIP_FILTERS: dict[str, ClipFilter] = {f.name: f for f in (
    QualityFilter(),  # blurry, dark, overexposed, low_resolution (key frames)
    StillFilter(),  # still (small frames 0.25 s apart)
    MotionFilter(),  # static, camera_motion_only (dense flow minus a homography)
    TextFilter(),  # text_overlay (PP-OCR on key frames)
    NsfwFilter(),  # nsfw (open_nsfw on key frames)
)}
DUPLICATES = "duplicates"  # duplicate (pHash + embeddings, within and across shards): a group step
FILTER_NAMES = (*CLIP_FILTERS, DUPLICATES)

REASONS = (BLURRY, DARK, OVEREXPOSED, LOW_RESOLUTION, STILL, STATIC, CAMERA_MOTION_ONLY, TEXT_OVERLAY, NSFW,
           DUPLICATE)


@dataclass
class FiltersParams:
    """Which filters run and each filter's thresholds (defaults: see each filter module and the README)."""

    enabled: list[str] = field(default_factory=lambda: list(FILTER_NAMES), metadata={
        "help": f"Filters to run, of {', '.join(FILTER_NAMES)}"})
    quality: QualityParams = field(default_factory=QualityParams, metadata={"help": "Sharpness, exposure, resolution"})
    still: StillParams = field(default_factory=StillParams, metadata={"help": "Still images and slideshows"})
    motion: MotionParams = field(default_factory=MotionParams, metadata={"help": "Camera vs object motion"})
    text: TextParams = field(default_factory=TextParams, metadata={"help": "Text overlays (OCR)"})
    nsfw: NsfwParams = field(default_factory=NsfwParams, metadata={"help": "open_nsfw probability"})
    duplicates: DuplicateParams = field(default_factory=DuplicateParams, metadata={"help": "Near-duplicates"})
    workers: int = field(default=0, metadata={
        "help": "Threads scoring clips at once: one video each, then helping with the videos still running "
                "(0 = one per usable core)"})

    def __post_init__(self) -> None:
        unknown = sorted(set(self.enabled) - set(FILTER_NAMES))
        if unknown:
            raise ValueError(f"unknown filters {unknown}; known: {', '.join(FILTER_NAMES)}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = one per usable core), got {self.workers}")

    def params_for(self, name: str):
        return getattr(self, name)

    def needs_motion_frames(self) -> bool:
        return any(CLIP_FILTERS[n].needs_motion_frames for n in self.enabled if n in CLIP_FILTERS)
