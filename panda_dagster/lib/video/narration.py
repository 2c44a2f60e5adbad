"""Narration clips (the HowTo100M recipe): one clip per run of subtitle cues, text kept with the clip.

Single ASR cues are often a few words over a second or two; neighbouring cues are merged until the clip
lasts at least `min_time_s` seconds or holds at least `min_words` words. Cues further apart than
`max_gap_s` are never merged (the narrator paused; what is on screen has likely changed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from panda_dagster.lib.records import Cue


@dataclass
class NarrationConfig:
    """HowTo100M's merging of cues into narration clips."""

    min_time_s: float = field(default=4.0, metadata={"help": "Merge cues until a clip lasts this long ..."})
    min_words: int = field(default=12, metadata={"help": "... or holds this many words"})
    max_gap_s: float = field(default=3.0, metadata={"help": "Never merge cues further apart than this"})


@dataclass
class NarrationClip:
    start_s: float
    end_s: float
    text: str
    n_cues: int
    n_words: int


@dataclass
class NarrationResult:
    clips: list[NarrationClip]
    dropped: list[tuple[float, float, str]] = field(default_factory=list)  # (start_s, end_s, reason)


def _words(text: str) -> int:
    return len(text.split())


def narration_clips(cues: Sequence[Cue], video_end_s: float | None = None,
                    config: NarrationConfig | None = None) -> NarrationResult:
    """Merge cues (sorted by start) into clips; spans are clamped to [0, video_end_s]."""
    cfg = config or NarrationConfig()
    ordered = sorted((c for c in cues), key=lambda c: (c.start_s, c.end_s))
    clips: list[NarrationClip] = []
    dropped: list[tuple[float, float, str]] = []
    group: list[Cue] = []

    def satisfied(items: list[Cue]) -> bool:
        duration = max(c.end_s for c in items) - items[0].start_s
        return duration >= cfg.min_time_s or sum(_words(c.text) for c in items) >= cfg.min_words

    def emit(items: list[Cue]) -> None:
        # Overlapping cues (rolling auto-captions repeat each line in the next cue) must not give
        # overlapping clips: a clip starts where the previous one ended at the earliest.
        start = max(0.0, items[0].start_s, clips[-1].end_s if clips else 0.0)
        end = max(c.end_s for c in items)
        if video_end_s is not None:
            end = min(end, video_end_s)
        text = " ".join(" ".join(c.text.split()) for c in items if c.text.strip())
        if end <= start:
            dropped.append((items[0].start_s, max(c.end_s for c in items), "cues lie outside the decodable video"))
            return
        clips.append(NarrationClip(start, end, text, len(items), _words(text)))

    def flush_unsatisfied(items: list[Cue], reason: str) -> None:
        dropped.append((items[0].start_s, max(c.end_s for c in items), reason))

    for cue in ordered:
        if not cue.text.strip() or cue.end_s <= cue.start_s:
            dropped.append((cue.start_s, cue.end_s, "empty cue text or non-positive duration"))
            continue
        if video_end_s is not None and cue.start_s >= video_end_s:
            dropped.append((cue.start_s, cue.end_s, f"starts after the decodable end {video_end_s:.2f} s"))
            continue
        if group and cue.start_s - max(c.end_s for c in group) > cfg.max_gap_s:
            if satisfied(group):
                emit(group)
            else:
                flush_unsatisfied(group, f"shorter than {cfg.min_time_s} s and fewer than {cfg.min_words} words "
                                         f"before a pause > {cfg.max_gap_s} s")
            group = []
        group.append(cue)
        if satisfied(group):
            emit(group)
            group = []
    if group:
        # A short tail joins the previous clip when it directly follows it; otherwise it is too thin alone.
        last = clips[-1] if clips else None
        if last is not None and group[0].start_s - last.end_s <= cfg.max_gap_s:
            tail_text = " ".join(" ".join(c.text.split()) for c in group)
            end = max(c.end_s for c in group)
            if video_end_s is not None:
                end = min(end, video_end_s)
            last.end_s = max(last.end_s, end)
            last.text = f"{last.text} {tail_text}".strip()
            last.n_cues += len(group)
            last.n_words = _words(last.text)
        else:
            flush_unsatisfied(group, f"shorter than {cfg.min_time_s} s and fewer than {cfg.min_words} words")
    return NarrationResult(clips, dropped)
