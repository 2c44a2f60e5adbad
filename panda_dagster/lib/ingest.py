"""Turning a source (a folder of videos, or a manifest file) into per-shard manifests.

A shard manifest is a JSON-lines file in artifact storage (`manifests/<shard>.jsonl`), one
`ManifestEntry` per line. Ingest is idempotent: every entry has a deterministic `video_id` (given, or
derived from its URI) and videos already ingested are skipped, so re-ingesting a source adds nothing.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.ids import video_id_for_uri
from panda_dagster.lib.records import IngestedVideo
from panda_dagster.lib.storage import Storage

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .ts .mts .m2ts .flv .wmv .ogv .3gp .mxf .y4m".split()
)
SUBTITLE_EXTENSIONS = (".srt", ".vtt")
MANIFEST_EXTENSIONS = (".csv", ".jsonl", ".parquet")
KNOWN_COLUMNS = {"path", "video_id", "title", "description", "subtitles", "url", "references"}
SHARD_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class IngestError(Exception):
    """The source as a whole cannot be ingested (the CLI prints this and exits non-zero)."""


@dataclass
class ManifestEntry:
    video_id: str
    uri: str  # absolute local path, s3:// or http(s):// URL
    title: str | None = None
    description: str | None = None
    subtitles_uri: str | None = None  # subtitle file (local path or URL)
    subtitles_text: str | None = None  # subtitles given inline in the manifest
    url: str | None = None  # the video's public page, for lineage
    references: list[str] | None = None  # reference captions (evaluation sets)
    metadata: dict = field(default_factory=dict)  # any other column / sidecar key
    source: str = ""  # the folder or manifest this entry came from
    row: int | None = None  # 1-based row in the manifest, for error messages
    ingest_error: str | None = None  # set when the entry is known bad at ingest time

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> ManifestEntry:
        return cls(**json.loads(line))




def _is_url(value: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value))


def _resolve(value: str, base: Path) -> str:
    """Absolute local path (relative to the manifest's folder) or the URL unchanged."""
    if _is_url(value):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).absolute())


def _clean(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN from pandas
        return None
    text = str(value).strip()
    return text or None


def _parse_references(value: object) -> list[str] | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, (list, tuple)):
        refs = [str(v).strip() for v in value if str(v).strip()]
    else:
        text = str(value).strip()
        if not text:
            return None
        if text.startswith("["):
            try:
                refs = [str(v).strip() for v in json.loads(text) if str(v).strip()]
            except json.JSONDecodeError as exc:
                raise ValueError(f"references is not a valid JSON list: {exc}") from exc
        else:
            refs = [part.strip() for part in text.split("||") if part.strip()]
    return refs or None


def entry_from_fields(fields: dict, base: Path, source: str, row: int | None) -> ManifestEntry:
    path = _clean(fields.get("path"))
    metadata = {k: v for k, v in fields.items() if k not in KNOWN_COLUMNS and _clean(v) is not None}
    if path is None:
        return ManifestEntry(
            video_id=_clean(fields.get("video_id")) or f"row-{row}",
            uri="",
            source=source,
            row=row,
            metadata=metadata,
            ingest_error=f"row {row}: empty `path`",
        )
    uri = _resolve(path, base)
    stem = PurePosixPath(urllib.parse.urlparse(uri).path).stem if _is_url(uri) else Path(uri).stem
    entry = ManifestEntry(
        video_id=_clean(fields.get("video_id")) or video_id_for_uri(uri, stem),
        uri=uri,
        title=_clean(fields.get("title")),
        description=_clean(fields.get("description")),
        url=_clean(fields.get("url")),
        metadata=json.loads(json.dumps(metadata, default=str)),
        source=source,
        row=row,
    )
    subtitles = _clean(fields.get("subtitles"))
    if subtitles is not None:
        # Inline cue text contains a timing arrow; anything else names a subtitle file.
        if "-->" in subtitles:
            entry.subtitles_text = subtitles
        else:
            entry.subtitles_uri = _resolve(subtitles, base)
    try:
        entry.references = _parse_references(fields.get("references"))
    except ValueError as exc:
        entry.ingest_error = f"row {row}: {exc}"
    return entry


def read_manifest(path: Path) -> list[ManifestEntry]:
    """Entries of a .csv, .jsonl or .parquet manifest; IngestError if the file as a whole is unusable."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_EXTENSIONS:
        raise IngestError(f"{path}: unsupported manifest type {suffix!r} (use .csv, .jsonl or .parquet)")
    from panda_dagster.lib.export import panda70m_csv

    if suffix == ".csv" and panda70m_csv.is_panda70m_csv(path):
        # Panda-70M metadata (videoID, url, timestamp, ...): the videos with their given clip spans.
        return panda70m_csv.manifest_entries(path)
    try:
        if suffix == ".csv":
            text = path.read_text(encoding="utf-8-sig")
            reader = csv.DictReader(io.StringIO(text))
            columns = [c.strip() for c in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): v for k, v in r.items()} for r in reader]
        elif suffix == ".jsonl":
            rows = []
            for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
                if line.strip():
                    try:
                        value = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise IngestError(f"{path}: line {lineno} is not valid JSON: {exc}") from exc
                    if not isinstance(value, dict):
                        raise IngestError(f"{path}: line {lineno} is not a JSON object")
                    rows.append(value)
            columns = sorted({k for r in rows for k in r})
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            columns = table.column_names
            rows = table.to_pylist()
    except IngestError:
        raise
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise IngestError(f"{path}: cannot read manifest: {exc}") from exc
    if "path" not in columns:
        raise IngestError(
            f"{path}: manifest has no `path` column (columns: {', '.join(columns) or 'none'}); "
            "every row needs the video's local path, s3:// or http(s):// URL in `path`"
        )
    base = path.parent.resolve()
    return [entry_from_fields(r, base, str(path), i) for i, r in enumerate(rows, 1)]


def scan_folder(folder: Path) -> list[ManifestEntry]:
    """Every video under `folder` (recursively, sorted), with NAME.srt/.vtt and NAME.json sidecars."""
    folder = Path(folder).resolve()
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue  # hidden files and folders (e.g. .git) are not sources
        fields: dict = {"path": str(path)}
        sidecar = path.with_suffix(".json")
        error = None
        if sidecar.is_file():
            try:
                meta = json.loads(sidecar.read_text(encoding="utf-8-sig"))
                if not isinstance(meta, dict):
                    raise ValueError("top level is not an object")
                fields = {**meta, **fields}
            except (ValueError, UnicodeDecodeError) as exc:
                error = f"sidecar {sidecar.name} is not valid JSON metadata: {exc}"
        for ext in SUBTITLE_EXTENSIONS:
            if path.with_suffix(ext).is_file():
                fields["subtitles"] = str(path.with_suffix(ext))
                break
        entry = entry_from_fields(fields, folder, str(folder), None)
        if path.is_dir():
            entry.ingest_error = f"{path.name} is a directory, not a video file"
        elif error:
            # Bad metadata does not spoil the video: keep it, and report the sidecar.
            entry.metadata["sidecar_error"] = error
        entries.append(entry)
    return entries


def read_source(source: Path | str) -> list[ManifestEntry]:
    path = Path(source).expanduser()
    if not path.exists():
        raise IngestError(f"{source}: no such file or folder")
    if path.is_dir():
        entries = scan_folder(path)
        if not entries:
            raise IngestError(f"{source}: no video files found (extensions: {', '.join(sorted(VIDEO_EXTENSIONS))})")
        return entries
    return read_manifest(path)


def mark_duplicates(entries: list[ManifestEntry]) -> None:
    """Later rows that repeat an earlier video_id are flagged (raw_videos quarantines them)."""
    seen: dict[str, ManifestEntry] = {}
    for entry in entries:
        first = seen.get(entry.video_id)
        if first is None:
            seen[entry.video_id] = entry
        elif entry.ingest_error is None:
            where = f"row {first.row}" if first.row else first.uri
            entry.ingest_error = f"duplicate of {where} (same video_id {entry.video_id})"


@dataclass
class IngestPlan:
    shards: dict[str, list[ManifestEntry]]  # new shard key -> entries
    skipped_existing: int  # videos that were already ingested earlier

    @property
    def keys(self) -> list[str]:
        return list(self.shards)


def manifest_key(shard: str) -> str:
    return f"manifests/{shard}.jsonl"


def plan_ingest(
    entries: list[ManifestEntry], catalog: Catalog, storage: Storage, shard_size: int, prefix: str
) -> IngestPlan:
    if shard_size < 1:
        raise IngestError("--shard-size must be at least 1")
    if not SHARD_KEY_RE.match(prefix):
        raise IngestError(f"invalid shard prefix {prefix!r} (letters, digits, '_', '-', '.')")
    mark_duplicates(entries)
    known: set[str] = set()
    if catalog.shards("ingested"):
        known = set(catalog.query("SELECT video_id FROM ingested")["video_id"])
    # Duplicate rows of this batch stay (flagged) so raw_videos reports them; earlier batches don't.
    new = [e for e in entries if e.video_id not in known]
    return IngestPlan(shards=_split_into_shards(new, catalog, shard_size, prefix),
                      skipped_existing=len(entries) - len(new))


def _split_into_shards(entries: list[ManifestEntry], catalog: Catalog, shard_size: int,
                       prefix: str) -> dict[str, list[ManifestEntry]]:
    """`entries` cut into new shards `<prefix>-NNNNN`, numbered after the highest existing one."""
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)$")
    used = [int(m.group(1)) for k in catalog.shards("ingested") if (m := pattern.match(k))]
    next_index = max(used, default=0) + 1
    shards: dict[str, list[ManifestEntry]] = {}
    for start in range(0, len(entries), shard_size):
        shards[f"{prefix}-{next_index:05d}"] = entries[start : start + shard_size]
        next_index += 1
    return shards


RETRY_PREFIX = "retry"


def plan_retry_failed(catalog: Catalog, storage: Storage, shard_size: int = 100,
                      prefix: str = RETRY_PREFIX) -> IngestPlan:
    """New shards holding the videos whose download failed (table `fetches`), to be fetched again.

    A video is re-queued when its latest shard (in `ingested`) is the one whose fetch failed and that
    shard has no `videos` row for it, so running this twice before the retry shard is materialized adds
    nothing, and a video that failed again in its retry shard is re-queued once more. Its manifest entry
    is copied unchanged (same video_id, title, subtitles); downloads resume from the cached `.part`.
    Subtitle-only failures are not re-queued: their video landed without them (a kept_partial row).
    """
    if shard_size < 1:
        raise IngestError("--shard-size must be at least 1")
    if not SHARD_KEY_RE.match(prefix):
        raise IngestError(f"invalid shard prefix {prefix!r} (letters, digits, '_', '-', '.')")
    if not catalog.shards("fetches"):
        return IngestPlan(shards={}, skipped_existing=0)
    failed = catalog.query(
        "SELECT DISTINCT f.shard, f.video_id FROM fetches f "
        "WHERE f.status = 'failed' AND f.kind = 'video' "
        "AND f.shard = (SELECT i.shard FROM ingested i WHERE i.video_id = f.video_id "
        "               ORDER BY i.ingested_at DESC, i.shard DESC LIMIT 1) "
        + ("AND NOT EXISTS (SELECT 1 FROM videos v WHERE v.shard = f.shard AND v.video_id = f.video_id) "
           if catalog.shards("videos") else "")
        + "ORDER BY f.shard, f.video_id"
    )
    wanted: dict[str, set[str]] = {}
    for shard, video_id in zip(failed["shard"], failed["video_id"], strict=True):
        wanted.setdefault(shard, set()).add(video_id)
    entries = []
    for shard, video_ids in wanted.items():
        entries += [e for e in load_manifest(storage, shard) if e.video_id in video_ids and not e.ingest_error]
    return IngestPlan(shards=_split_into_shards(entries, catalog, shard_size, prefix), skipped_existing=0)


def write_plan(plan: IngestPlan, catalog: Catalog, storage: Storage) -> None:
    """Write each new shard's manifest, then record its videos in the `ingested` table."""
    now = dt.datetime.now(dt.timezone.utc)
    for shard, entries in plan.shards.items():
        storage.put_bytes(manifest_key(shard), ("\n".join(e.to_json() for e in entries) + "\n").encode("utf-8"))
        first = {e.video_id: e for e in reversed(entries)}  # one row per video_id: its first entry
        rows = [IngestedVideo(e.video_id, shard, e.uri, e.source, e.ingest_error, now) for e in first.values()]
        catalog.replace_shard("ingested", shard, rows)


def load_manifest(storage: Storage, shard: str) -> list[ManifestEntry]:
    key = manifest_key(shard)
    if not storage.exists(key):
        raise FileNotFoundError(f"no manifest for shard {shard!r} ({storage.uri(key)}); run `panda ingest` first")
    text = storage.get_bytes(key).decode("utf-8")
    return [ManifestEntry.from_json(line) for line in text.splitlines() if line.strip()]


def ingest_source(
    source: Path | str, catalog: Catalog, storage: Storage, shard_size: int = 100, prefix: str = "shard"
) -> IngestPlan:
    entries = read_source(source)
    plan = plan_ingest(entries, catalog, storage, shard_size, prefix)
    write_plan(plan, catalog, storage)
    return plan


def summarize(entries: Iterable[ManifestEntry]) -> str:
    entries = list(entries)
    bad = sum(1 for e in entries if e.ingest_error)
    return f"{len(entries)} entries ({bad} flagged)"
