"""What a teacher sees of a clip: the clip span and key frames, its video's metadata, subtitle cues.

Clips and videos are narrowed to what the teachers use (`ClipInput.of` / `VideoInput.of` take the
typed rows `Catalog.rows` returns); cues are the one cue type, `records.Cue` (the `subtitles` table's row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from panda_dagster.lib.records import Cue, VideoRecord
from panda_dagster.lib.video.records import ClipRecord


@dataclass(frozen=True)
class ClipInput:
    clip_id: str
    video_id: str
    start_s: float
    end_s: float
    keyframe_uris: tuple[str, ...] = ()  # stored JPEG key frames, in time order
    narration: str | None = None  # subtitle text the clips stage already attached, if any

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)

    @classmethod
    def of(cls, clip: ClipRecord) -> ClipInput:
        return cls(clip.clip_id, clip.video_id, clip.start_s, clip.end_s, tuple(clip.keyframe_uris or ()),
                   clip.narration or None)


@dataclass(frozen=True)
class VideoInput:
    video_id: str
    local_path: str
    title: str | None = None
    description: str | None = None
    has_audio: bool = False
    duration_s: float | None = None

    @classmethod
    def of(cls, video: VideoRecord) -> VideoInput:
        return cls(video.video_id, video.local_path, video.title, video.description, video.probe.has_audio,
                   video.probe.duration_s)


def subtitle_text_for_span(cues: Sequence[Cue], start_s: float, end_s: float, min_overlap_s: float = 0.05) -> str:
    """Text of the cues that overlap [start_s, end_s] (by at least `min_overlap_s`, or fully inside a very
    short clip), in time order, with repeated lines (rolling captions) said once."""
    parts: list[str] = []
    for cue in cues:
        overlap = min(cue.end_s, end_s) - max(cue.start_s, start_s)
        if overlap < min(min_overlap_s, max(0.0, end_s - start_s)) or overlap <= 0:
            continue
        text = " ".join(cue.text.split())
        if text and (not parts or parts[-1] != text):
            parts.append(text)
    return " ".join(parts)
