"""The released Panda-70M metadata CSV, written and read back.

Layout of the published files (snap-research/Panda-70M, `dataset_dataloading`): one row per source video,
columns `videoID,url,timestamp,caption,matching_score`, each of the last three a Python list literal
with one entry per clip, in clip order:

    videoID,url,timestamp,caption,matching_score
    abc,https://...,"[['0:00:00.000', '0:00:05.005'], ['0:00:05.005', '0:00:09.743']]","['A dog ...', 'A cat ...']","[0.4478, 0.5012]"

Timecodes are `H:MM:SS.mmm` (hours not zero-padded, as in Panda's `event_timecode.json` and CSVs; the
Panda downloader parses them with `%H:%M:%S.%f`, which also reads `HH:`). Lists are written with
Python's `str()` of a list, so `ast.literal_eval` (what every Panda-70M script does) reads them back.
Our extra columns come after Panda's: `clip_id`, `accepted`, `teacher` (per-clip lists like the
others), `shard`, `title`, `page_url`, `license`. `url` is where the video can be read (local path, s3://
or http(s):// URL), so the file is also a manifest: `panda ingest export.csv` re-ingests the videos
with the given spans (clips `mode=given`) to re-caption them.
"""

from __future__ import annotations

import ast
import csv
import io
import re
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from panda_dagster.lib.export.base import ExporterBase, FormatOutput
from panda_dagster.lib.export.rows import DatasetRow

PANDA70M_COLUMNS = ("videoID", "url", "timestamp", "caption", "matching_score")
EXTRA_COLUMNS = ("clip_id", "accepted", "teacher", "shard", "title", "page_url", "license")
CSV_NAME = "panda70m.csv"
SCORE_DIGITS = 4  # matching scores in the list, rounded like the released files' short floats
# Metadata keys a re-ingested Panda-70M row stores on its video (read by `clips` in mode `given`).
GIVEN_SPANS_KEY = "given_spans"
GIVEN_CAPTIONS_KEY = "given_captions"
GIVEN_SCORES_KEY = "given_matching_scores"
_TIMECODE_RE = re.compile(r"^\s*(\d+):([0-5]?\d):(\d+(?:\.\d*)?)\s*$")


def panda_timecode(seconds: float) -> str:
    """Seconds as Panda-70M's `H:MM:SS.mmm` (rounded to the millisecond)."""
    if seconds < 0:
        raise ValueError(f"negative time {seconds}")
    total_ms = int(round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours}:{minutes:02d}:{secs:02d}.{ms:03d}"


def parse_timecode(value: object) -> float:
    """`H:MM:SS.mmm` / `HH:MM:SS.ffffff` (or a number of seconds) as seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _TIMECODE_RE.match(str(value))
    if not match:
        raise ValueError(f"not a H:MM:SS.mmm timecode: {value!r}")
    hours, minutes, secs = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(secs)


def parse_timestamps(text: str) -> list[tuple[float, float]]:
    """A `timestamp` cell (`"[['0:00:00.000', '0:00:05.005'], ...]"`) as [(start_s, end_s), ...]."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"timestamp is not a list literal: {exc}") from exc
    if not isinstance(value, list | tuple):
        raise ValueError("timestamp is not a list of [start, end] pairs")
    if len(value) == 2 and not isinstance(value[0], list | tuple):
        value = [value]  # a single pair, as Panda's downloader also accepts
    spans = []
    for pair in value:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError(f"timestamp entry {pair!r} is not a [start, end] pair")
        start, end = parse_timecode(pair[0]), parse_timecode(pair[1])
        if not end > start:
            raise ValueError(f"timestamp pair {list(pair)!r} is empty or reversed")
        spans.append((start, end))
    return spans


def _literal_list(text: str | None) -> list | None:
    if text is None or not str(text).strip():
        return None
    try:
        value = ast.literal_eval(str(text).strip())
    except (ValueError, SyntaxError):
        return None
    return list(value) if isinstance(value, list | tuple) else None


# ----------------------------------------------------------------------------------------- writing


def _video_rows(rows: Sequence[DatasetRow]) -> list[dict[str, str]]:
    groups: dict[tuple[str, str], list[DatasetRow]] = {}
    for row in rows:
        groups.setdefault((row.shard, row.video_id), []).append(row)
    out = []
    for (shard, video_id), clips in sorted(groups.items()):
        clips = sorted(clips, key=lambda r: (r.start_s, r.end_s, r.clip_id))
        source = clips[0].source
        out.append({
            "videoID": video_id,
            "url": source.uri,
            "timestamp": str([[panda_timecode(c.start_s), panda_timecode(c.end_s)] for c in clips]),
            "caption": str([c.caption for c in clips]),
            "matching_score": str([round(c.matching_score, SCORE_DIGITS) for c in clips]),
            "clip_id": str([c.clip_id for c in clips]),
            "accepted": str([c.accepted for c in clips]),
            "teacher": str([c.teacher for c in clips]),
            "shard": shard,
            "title": source.title or "",
            "page_url": source.url or "",
            "license": source.license or "",
        })
    return out


def csv_text(rows: Sequence[DatasetRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*PANDA70M_COLUMNS, *EXTRA_COLUMNS], lineterminator="\n")
    writer.writeheader()
    writer.writerows(_video_rows(rows))
    return buffer.getvalue()


class Panda70mCsvExporter(ExporterBase):
    name = "panda70m-csv"

    def write(self, dataset_rows: Sequence[DatasetRow], out_dir: Path) -> FormatOutput:
        started = time.perf_counter()
        n_videos = len({(r.shard, r.video_id) for r in dataset_rows})
        return self.one_file(out_dir, CSV_NAME, csv_text(dataset_rows).encode("utf-8"), len(dataset_rows), started,
                             [f"{n_videos} videos (one row each)"])


# ----------------------------------------------------------------------------------------- reading


@contextmanager
def _large_fields():
    """Panda-70M rows of long videos hold hundreds of captions: more than csv's default field limit."""
    previous = csv.field_size_limit()
    csv.field_size_limit(1 << 30)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def is_panda70m_csv(path: Path | str) -> bool:
    """A CSV whose header has Panda-70M's `videoID`, `url`, `timestamp` (and no manifest `path`)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    columns = {c.strip() for c in header}
    return {"videoID", "url", "timestamp"} <= columns and "path" not in columns


def read_panda70m_csv(path: Path | str) -> list[dict[str, str]]:
    with _large_fields(), open(path, encoding="utf-8-sig", newline="") as fh:
        return [{(k or "").strip(): v for k, v in row.items()} for row in csv.DictReader(fh)]


def manifest_entries(path: Path | str) -> list:
    """Ingest entries for a Panda-70M metadata CSV: `url` is the video (local path, relative to the CSV, or
    URL), `videoID` its id, `timestamp` its clip spans (stored in the video metadata under
    `given_spans`, with Panda's captions and scores beside them). A row whose `timestamp` cannot be
    parsed is flagged (raw_videos quarantines it with the reason)."""
    from panda_dagster.lib.ingest import IngestError, entry_from_fields

    path = Path(path)
    try:
        rows = read_panda70m_csv(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise IngestError(f"{path}: cannot read Panda-70M CSV: {exc}") from exc
    base = path.parent.resolve()
    entries = []
    for number, row in enumerate(rows, 1):
        fields: dict = {k: v for k, v in row.items() if k not in PANDA70M_COLUMNS and k != "page_url"}
        url = (row.get("url") or "").strip()
        fields["path"] = url
        fields["video_id"] = (row.get("videoID") or "").strip() or None
        page = (row.get("page_url") or "").strip()
        fields["url"] = page or (url if re.match(r"^https?://", url) else None)
        if "shard" in fields:  # the shard it was exported from; the new home assigns its own
            fields["exported_from_shard"] = fields.pop("shard")
        for key in ("clip_id", "accepted", "teacher"):  # our per-clip extras, back as lists beside the spans
            if key in fields:
                fields[f"given_{key}s"] = _literal_list(fields.pop(key))
        fields[GIVEN_CAPTIONS_KEY] = _literal_list(row.get("caption"))
        fields[GIVEN_SCORES_KEY] = _literal_list(row.get("matching_score"))
        error = None
        try:
            spans = parse_timestamps(row.get("timestamp") or "")
            if not spans:
                error = "`timestamp` lists no clip spans"
            fields[GIVEN_SPANS_KEY] = [[round(s, 6), round(e, 6)] for s, e in spans]
        except ValueError as exc:
            error = f"`timestamp` cannot be read: {exc}"
        entry = entry_from_fields(fields, base, str(path), number)
        if error and entry.ingest_error is None:
            entry.ingest_error = f"row {number}: {error}"
        entries.append(entry)
    return entries
