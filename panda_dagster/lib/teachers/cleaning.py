"""Caption clean-up: what is left of a model's raw output once the noise around the caption is gone."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Chat-template markers and special tokens that leak when a model emits them mid-text.
_SPECIAL_TOKEN = re.compile(r"<\|[^|>]{0,40}\|>|</?s>|\[(?:CLS|SEP|PAD|UNK|MASK|DEC)\]|<end_of_utterance>|<image>"
                            r"|<fake_token_around_image>|<global-img>|<row_\d+_col_\d+>|<video>")
_ROLE_PREFIX = re.compile(r"^\s*(?:assistant|caption|answer|description)\s*:\s*", re.IGNORECASE)
_CONTROL = re.compile(r"[\u0000-\u0008\u000b-\u001f\u007f\ufffd\u200b]")


@dataclass(frozen=True)
class CleanCaption:
    caption: str | None  # None: nothing usable, see `reason`
    reason: str | None = None


def _strip_echo(text: str, prompt: str) -> str:
    """Drop a copy of the prompt that decoder-only captioners (BLIP, GIT, some LLMs) repeat first."""
    prompt_norm = " ".join(prompt.split()).lower()
    if not prompt_norm:
        return text
    if text.lower().startswith(prompt_norm):
        return text[len(prompt_norm):]
    # The echo may be only the last line of a multi-line prompt (the instruction).
    last_line = " ".join(prompt.strip().splitlines()[-1].split()).lower()
    if last_line and len(last_line) > 8 and text.lower().startswith(last_line):
        return text[len(last_line):]
    return text


def clean_caption(raw: str, prompt: str = "", max_chars: int = 1000) -> CleanCaption:
    """Whitespace collapsed, special tokens and prompt echo removed, surrounding quotes dropped.
    Returns caption None with a reason when nothing remains."""
    if raw is None:
        return CleanCaption(None, "model returned no text")
    text = _CONTROL.sub(" ", _SPECIAL_TOKEN.sub(" ", raw))
    text = " ".join(text.split())
    if not text:
        return CleanCaption(None, "empty output (only whitespace or special tokens)")
    before_echo = text
    text = _strip_echo(text, prompt).strip(" :-\n")
    text = _ROLE_PREFIX.sub("", text)
    text = text.strip().strip("\"'`“”‘’").strip()
    if not text:
        return CleanCaption(None, "output only repeated the prompt" if before_echo else "empty output")
    if not any(ch.isalnum() for ch in text):
        return CleanCaption(None, f"output has no letters or digits: {text[:40]!r}")
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0] + " ..."
    return CleanCaption(text)
