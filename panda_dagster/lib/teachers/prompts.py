"""Prompt building: the clip's metadata and speech rendered into each teacher's template.

Panda-70M's teachers see more than pixels: video-LLMs and text teachers get the video title, the
description and the words spoken during the clip. Long fields are cut at a word boundary so one chatty
description cannot push the frames out of the context window.
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass

from panda_dagster.lib.records import Cue
from panda_dagster.lib.teachers.inputs import ClipInput, VideoInput, subtitle_text_for_span

FIELDS = ("title", "description", "subtitles", "narration", "duration_s", "num_frames")
MISSING = "(none)"
MAX_CHARS = {"title": 200, "description": 600, "subtitles": 800, "narration": 2000}


def check_template(template: str) -> None:
    """Raise ValueError when the template uses an unknown field or is malformed."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    for _, field_name, _, _ in parsed:
        if field_name is None:
            continue
        if field_name not in FIELDS:
            raise ValueError(f"unknown field {{{field_name}}}; available: {', '.join(FIELDS)}")


def truncate_words(text: str, max_chars: int) -> str:
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1].rsplit(" ", 1)[0] if " " in text[:max_chars] else text[:max_chars]
    return cut.rstrip(" ,;:.") + " ..."


@dataclass(frozen=True)
class PromptContext:
    """Everything a template can mention about one clip (already cleaned and truncated)."""

    title: str
    description: str
    subtitles: str  # words spoken during the clip (subtitle files, inline text or ASR)
    narration: str  # the narration teacher's caption: clip narration, else the subtitle text
    duration_s: float
    num_frames: int

    def as_fields(self) -> dict[str, object]:
        return {
            "title": self.title or MISSING,
            "description": self.description or MISSING,
            "subtitles": self.subtitles or MISSING,
            "narration": self.narration,
            "duration_s": self.duration_s,
            "num_frames": self.num_frames,
        }


def build_context(clip: ClipInput, video: VideoInput | None, cues: list[Cue], num_frames: int) -> PromptContext:
    subtitles = subtitle_text_for_span(cues, clip.start_s, clip.end_s)
    narration = " ".join((clip.narration or "").split()) or subtitles
    return PromptContext(
        title=truncate_words((video.title if video else None) or "", MAX_CHARS["title"]),
        description=truncate_words((video.description if video else None) or "", MAX_CHARS["description"]),
        subtitles=truncate_words(subtitles, MAX_CHARS["subtitles"]),
        narration=truncate_words(narration, MAX_CHARS["narration"]),
        duration_s=round(clip.duration_s, 3),
        num_frames=num_frames,
    )


def render_prompt(template: str, context: PromptContext) -> str:
    return template.format(**context.as_fields()).strip()


def prompt_sha(config_fingerprint: str, rendered_prompt: str, frames_key: object) -> str:
    """Identity of one generation request: teacher settings, the exact prompt and which frames it sees.
    Equal hashes mean the cached caption can be reused."""
    payload = json.dumps([config_fingerprint, rendered_prompt, frames_key], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def frame_timestamps(start_s: float, end_s: float, num_frames: int) -> list[float]:
    """Centres of `num_frames` equal slices of the clip: never the exact cut frame at either end."""
    duration = max(0.0, end_s - start_s)
    return [round(start_s + duration * (i + 0.5) / num_frames, 3) for i in range(num_frames)]


def video_llm_messages(prompt: str, timestamps_s: list[float], clip_start_s: float) -> list[dict]:
    """Chat messages for a video-LLM: every frame as an image, each preceded by its time in the clip
    (the way SmolVLM2 lays out videos), then the instruction with the metadata."""
    content: list[dict] = []
    for ts in timestamps_s:
        offset = max(0.0, ts - clip_start_s)
        content.append({"type": "text", "text": f"Frame at {int(offset // 60):02d}:{offset % 60:04.1f}:"})
        content.append({"type": "image"})
    content.append({"type": "text", "text": "\n" + prompt})
    return [{"role": "user", "content": content}]


def text_llm_messages(prompt: str, system_prompt: str) -> list[dict]:
    messages = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": prompt})
    return messages
