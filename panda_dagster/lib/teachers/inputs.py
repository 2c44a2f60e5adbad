"""What a teacher sees of a clip: the clip span and key frames, its video's metadata, subtitle cues.

These are plain dataclasses so the library does not depend on how the `clips` stage stores its rows;
`from_frames` helpers adapt catalog DataFrames (columns as in the `clips`, `videos` and `subtitles`
tables) into them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


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


@dataclass(frozen=True)
class VideoInput:
    video_id: str
    local_path: str
    title: str | None = None
    description: str | None = None
    has_audio: bool = False
    duration_s: float | None = None


@dataclass(frozen=True)
class CueInput:
    video_id: str
    start_s: float
    end_s: float
    text: str
    source: str = "file"  # file | inline | asr


def _none_if_nan(value):
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def clips_from_frame(df) -> list[ClipInput]:
    """Rows of the `clips` table (needs clip_id, video_id, start_s, end_s; keyframe_uris and narration
    are used when present) as ClipInputs."""
    out = []
    has_keyframes = "keyframe_uris" in df.columns
    narration_col = next((c for c in ("narration", "narration_text", "subtitle_text") if c in df.columns), None)
    for row in df.itertuples(index=False):
        keyframes = getattr(row, "keyframe_uris") if has_keyframes else None
        keyframes = tuple(str(k) for k in keyframes) if keyframes is not None and len(keyframes) else ()
        narration = _none_if_nan(getattr(row, narration_col)) if narration_col else None
        out.append(ClipInput(str(row.clip_id), str(row.video_id), float(row.start_s), float(row.end_s),
                             keyframes, narration or None))
    return out


def videos_from_frame(df) -> dict[str, VideoInput]:
    out = {}
    for row in df.itertuples(index=False):
        out[str(row.video_id)] = VideoInput(
            video_id=str(row.video_id),
            local_path=str(row.local_path),
            title=_none_if_nan(getattr(row, "title", None)),
            description=_none_if_nan(getattr(row, "description", None)),
            has_audio=bool(getattr(row, "has_audio", False)),
            duration_s=_none_if_nan(getattr(row, "duration_s", None)),
        )
    return out


def cues_from_frame(df) -> list[CueInput]:
    return [
        CueInput(str(r.video_id), float(r.start_s), float(r.end_s), str(r.text), str(getattr(r, "source", "file")))
        for r in df.itertuples(index=False)
    ]


def cues_by_video(cues: Iterable[CueInput]) -> dict[str, list[CueInput]]:
    grouped: dict[str, list[CueInput]] = {}
    for cue in cues:
        grouped.setdefault(cue.video_id, []).append(cue)
    for items in grouped.values():
        items.sort(key=lambda c: (c.start_s, c.end_s))
    return grouped


def subtitle_text_for_span(cues: Sequence[CueInput], start_s: float, end_s: float, min_overlap_s: float = 0.05) -> str:
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
