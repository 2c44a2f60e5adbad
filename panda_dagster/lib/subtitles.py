"""Subtitle files (SRT and WebVTT): tolerant parsing and writing.

Parsing is forgiving about what real-world files get wrong (BOMs, UTF-16, cp1252, CRLF, markup,
cue settings, missing VTT hours) but never silent: every skipped cue or encoding fallback is
reported in `ParsedSubtitles.problems`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from panda_dagster.lib.records import CUE_SOURCE_SUBTITLE, Cue  # the one cue type (the `subtitles` table's row)


class SubtitleError(Exception):
    """The subtitle source has nothing usable (not text, not SRT/VTT, or every cue is broken)."""


@dataclass
class ParsedSubtitles:
    cues: list[Cue]
    problems: list[str] = field(default_factory=list)  # skipped cues, encoding fallbacks, stray text
    format: str = ""  # "srt" or "vtt" (as detected), "" when there was nothing to parse

    @property
    def text(self) -> str:
        """All cue texts joined, in time order (e.g. as a transcript)."""
        return " ".join(cue.text for cue in self.cues)


# ----------------------------------------------------------------------------------------- reading

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig", None),
    (b"\xff\xfe\x00\x00", "utf-32-le", "UTF-32 (BOM)"),
    (b"\x00\x00\xfe\xff", "utf-32-be", "UTF-32 (BOM)"),
    (b"\xff\xfe", "utf-16-le", "UTF-16 (BOM)"),
    (b"\xfe\xff", "utf-16-be", "UTF-16 (BOM)"),
)


def _decode_bytes(data: bytes, problems: list[str]) -> str:
    for bom, encoding, note in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom):].decode(encoding.replace("-sig", ""))
            except UnicodeDecodeError as error:
                raise SubtitleError(f"not text: starts with a {encoding} byte-order mark but does not decode ({error.reason})") from None
            if note:
                problems.append(f"decoded as {note}")
            return text
    # UTF-16 without a BOM: NUL bytes in every other position.
    if len(data) >= 4 and data.count(b"\x00") > len(data) // 4:
        evens, odds = data[0::2].count(0), data[1::2].count(0)
        encoding = "utf-16-le" if odds > evens else "utf-16-be"
        if max(evens, odds) > 0.8 * (len(data) // 2) and min(evens, odds) < 0.1 * (len(data) // 2):
            try:
                text = data.decode(encoding)
                problems.append(f"decoded as {encoding.upper()} without a byte-order mark")
                return text
            except UnicodeDecodeError:
                pass
        raise SubtitleError("not text: binary data (contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        raise SubtitleError("not text: the bytes are neither UTF-8, UTF-16 nor cp1252") from None
    problems.append("not valid UTF-8; decoded as cp1252 (Windows Latin-1)")
    return text


def _check_is_text(text: str) -> None:
    if not text:
        return
    control = sum(1 for ch in text if (ord(ch) < 32 and ch not in "\t\n\r\f") or ch in "\x7f\ufffd")
    if control > max(2, 0.01 * len(text)):
        raise SubtitleError(f"not text: binary data ({control} control characters in {len(text)})")


def _read_source(source: str | Path, inline: bool, problems: list[str]) -> str:
    if inline:
        if isinstance(source, bytes):
            return _decode_bytes(source, problems)
        return str(source).lstrip("\ufeff")
    path = Path(source)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SubtitleError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise SubtitleError(f"not a subtitle file: {path} is a directory") from None
    except PermissionError:
        raise SubtitleError(f"cannot read: permission denied ({path})") from None
    except OSError as error:
        raise SubtitleError(f"cannot read {path}: {error.strerror or error}") from None
    return _decode_bytes(data, problems)


# ----------------------------------------------------------------------------------------- parsing

# [hh:]mm:ss[,.]fff -- hours optional (WebVTT), 1-3 fraction digits read as a decimal fraction.
_TIMESTAMP = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?$")
_TIMING_LINE = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)(?:\s+(.*))?$")
_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<\d{1,2}:\d{2}(?::\d{2})?[.,]\d{1,3}>")  # markup and karaoke timestamps
_ASS_OVERRIDE = re.compile(r"\{\\[^}]*\}")  # {\an8}, {\i1} in SRT exported from ASS
_BLOCK_KEYWORDS = ("WEBVTT", "NOTE", "STYLE", "REGION")


def _parse_timestamp(value: str) -> float | None:
    match = _TIMESTAMP.match(value.strip())
    if not match:
        return None
    hours, minutes, seconds, fraction = match.groups()
    if int(minutes) >= 60 or int(seconds) >= 60:
        return None
    total = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
    if fraction:
        total += int(fraction) / 10 ** len(fraction)
    return round(total, 3)


def _clean_text(lines: list[str]) -> str:
    parts = []
    for line in lines:
        line = _ASS_OVERRIDE.sub("", _TAG.sub("", line))
        line = html.unescape(line).replace("\u00a0", " ")
        line = " ".join(line.split())
        if line:
            parts.append(line)
    return " ".join(parts)


def _detect_format(text: str) -> str:
    if text.lstrip().startswith("WEBVTT"):
        return "vtt"
    for line in text.split("\n"):
        match = _TIMING_LINE.match(line)
        if match:
            return "srt" if "," in match.group(1) else "vtt"
    return "srt"


def parse_subtitles(source: str | Path, *, inline: bool = False) -> ParsedSubtitles:
    """Parse SRT or WebVTT (auto-detected). `source` is a path, or the subtitle text itself when
    `inline=True`. Broken cues are skipped and listed in `problems`; raises SubtitleError when a
    non-empty source yields no usable cue or is not text at all."""
    problems: list[str] = []
    text = _read_source(source, inline, problems)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    _check_is_text(text)
    if not text.strip():
        problems.append("no cues: the subtitle source is empty")
        return ParsedSubtitles([], problems, "")
    fmt = _detect_format(text)

    raw_cues: list[tuple[int, str, list[str]]] = []  # (line number, timing line, text lines)
    current: tuple[int, str, list[str]] | None = None
    block: list[tuple[int, str]] = []  # lines of the current non-cue block

    def close_block() -> None:
        if not block:
            return
        first = block[0][1].strip()
        is_index = len(block) == 1 and (first.isdigit() or fmt == "vtt")  # a cue id without timing
        if not first.startswith(_BLOCK_KEYWORDS) and not is_index:
            snippet = " / ".join(line.strip() for _, line in block)[:60]
            problems.append(f"line {block[0][0]}: text outside any cue ignored ({snippet!r})")
        block.clear()

    for number, line in enumerate(text.split("\n"), start=1):
        if "-->" in line:
            if current is not None:
                raw_cues.append(current)
            # Lines just before the timing (in the same block) are the cue's id: drop them.
            block.clear()
            current = (number, line, [])
        elif not line.strip():
            if current is not None:
                raw_cues.append(current)
                current = None
            close_block()
        elif current is not None:
            current[2].append(line)
        else:
            block.append((number, line))
    if current is not None:
        raw_cues.append(current)
    close_block()

    if not raw_cues:
        if text.lstrip().startswith("WEBVTT"):
            problems.append("no cues: the WebVTT file has a header but no cues")
            return ParsedSubtitles([], problems, "vtt")
        raise SubtitleError("not a subtitle file: no cue timings ('-->') found")

    cues: list[Cue] = []
    for number, timing, lines in raw_cues:
        match = _TIMING_LINE.match(timing)
        start = _parse_timestamp(match.group(1)) if match else None
        end = _parse_timestamp(match.group(2)) if match else None
        if start is None or end is None:
            problems.append(f"line {number}: cue skipped, unparseable timing {timing.strip()!r}")
            continue
        if end < start:
            problems.append(f"line {number}: cue skipped, ends before it starts ({timing.strip()!r})")
            continue
        cue_text = _clean_text(lines)
        if not cue_text:
            problems.append(f"line {number}: cue skipped, no text")
            continue
        cues.append(Cue(start, end, cue_text))

    if not cues:
        reasons = "; ".join(problems[-3:])
        raise SubtitleError(f"no usable cues: all {len(raw_cues)} cues are broken ({reasons})")
    cues.sort(key=lambda cue: (cue.start_s, cue.end_s))
    return ParsedSubtitles(cues, problems, fmt)


# ----------------------------------------------------------------------------------------- writing


def _format_timestamp(seconds: float, ms_separator: str) -> str:
    total_ms = max(0, int(round(seconds * 1000)))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{ms_separator}{ms:03d}"


def _cue_lines(text: str) -> str:
    # A blank line would end the cue early; keep the line structure but drop empty lines.
    return "\n".join(line for line in text.splitlines() if line.strip()) or " "


def write_srt(cues: list[Cue], path: str | Path) -> Path:
    """Write cues as SubRip (UTF-8, LF line endings). Returns the path."""
    path = Path(path)
    blocks = []
    for index, cue in enumerate(cues, start=1):
        blocks.append(
            f"{index}\n{_format_timestamp(cue.start_s, ',')} --> {_format_timestamp(cue.end_s, ',')}\n"
            f"{_cue_lines(cue.text)}\n"
        )
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def write_vtt(cues: list[Cue], path: str | Path) -> Path:
    """Write cues as WebVTT (UTF-8, LF line endings). Returns the path."""
    path = Path(path)
    blocks = ["WEBVTT\n"]
    for cue in cues:
        blocks.append(
            f"{_format_timestamp(cue.start_s, '.')} --> {_format_timestamp(cue.end_s, '.')}\n"
            f"{_cue_lines(cue.text)}\n"
        )
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def cues_by_video(cues: Iterable[Cue]) -> dict[str, list[Cue]]:
    """Cues grouped per video, in time order. A video's subtitle cues win over its ASR cues: ASR is the
    fallback for videos without subtitles, and both together would say everything twice."""
    grouped: dict[str, list[Cue]] = {}
    for cue in cues:
        grouped.setdefault(cue.video_id, []).append(cue)
    for video_id, items in grouped.items():
        if any(c.source == CUE_SOURCE_SUBTITLE for c in items):
            items = [c for c in items if c.source == CUE_SOURCE_SUBTITLE]
        grouped[video_id] = sorted(items, key=lambda c: (c.start_s, c.end_s, c.cue_index))
    return grouped
