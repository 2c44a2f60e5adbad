"""WebDataset: tar shards of `KEY.mp4` (the clip cut from its source video), `KEY.txt` (the selected
caption) and `KEY.json` (the same record as a JSONL line, plus the span the file really holds).

Clips are cut with `lib/video/cutting.cut_clip`: a stream copy by default (starts at the first keyframe
inside the clip, so the file may begin a little after the clip's start: `file.start_s` says where),
a frame-exact re-encode with `cut_mode=reencode`. A new tar starts after `samples_per_shard` samples or
before it would pass `max_shard_bytes`; with `bucket_by`, samples are grouped into sub-folders by
resolution, aspect ratio and/or duration (`webdataset/720p_16x9_5-10s/000000.tar`). Tar headers carry
no time or owner, so the same clips give the same tar layout.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from panda_dagster.lib.export.base import ExporterBase, FormatOutput, WebDatasetOptions, files_size
from panda_dagster.lib.export.rows import DatasetRow

WDS_DIR = "webdataset"
_RESOLUTIONS = (144, 180, 240, 360, 480, 720, 1080, 1440, 2160)  # short side, pixels
_ASPECTS = {"1x1": 1.0, "4x3": 4 / 3, "16x9": 16 / 9, "21x9": 21 / 9, "3x4": 3 / 4, "9x16": 9 / 16}


def resolution_bucket(width: int | None, height: int | None) -> str:
    if not width or not height:
        return "unknown-res"
    short = min(width, height)
    below = [r for r in _RESOLUTIONS if r <= short]
    return f"{below[-1]}p" if below else f"lt{_RESOLUTIONS[0]}p"


def aspect_bucket(width: int | None, height: int | None) -> str:
    if not width or not height:
        return "unknown-aspect"
    ratio = width / height
    return min(_ASPECTS, key=lambda name: abs(_ASPECTS[name] - ratio))


def duration_bucket(duration_s: float, edges: Sequence[float]) -> str:
    def fmt(x: float) -> str:
        return f"{x:g}"

    if not edges or duration_s < edges[0]:
        return f"lt{fmt(edges[0])}s" if edges else "all"
    for low, high in zip(edges, edges[1:]):
        if low <= duration_s < high:
            return f"{fmt(low)}-{fmt(high)}s"
    return f"ge{fmt(edges[-1])}s"


def bucket_of(row: DatasetRow, options: WebDatasetOptions) -> str:
    parts = []
    for key in options.bucket_by:
        if key == "resolution":
            parts.append(resolution_bucket(row.source.width, row.source.height))
        elif key == "aspect":
            parts.append(aspect_bucket(row.source.width, row.source.height))
        elif key == "duration":
            parts.append(duration_bucket(row.duration_s, options.duration_edges_s))
    return "_".join(parts)


def keyframe_times(path: str | Path) -> list[float]:
    """Presentation times of the video keyframes (demux only, nothing decoded), relative to the file's
    start as `ffmpeg -ss` counts them."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        origin = container.start_time / 1_000_000 if container.start_time is not None else 0.0
        base = stream.time_base
        times = [float(p.pts * base) - origin for p in container.demux(stream)
                 if p.is_keyframe and p.pts is not None]
    return sorted(times)


class _TarShards:
    """Writes samples into numbered tars, rolling over by sample count or bytes."""

    def __init__(self, out_dir: Path, folder: str, options: WebDatasetOptions):
        self.out_dir, self.folder, self.options = out_dir, folder, options
        self.files: list[str] = []
        self._tar: tarfile.TarFile | None = None
        self._count = 0
        self._bytes = 0

    def _open(self) -> None:
        name = f"{self.folder}/{len(self.files):06d}.tar"
        (self.out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        self._tar = tarfile.open(self.out_dir / name, "w", format=tarfile.USTAR_FORMAT)
        self.files.append(name)
        self._count = self._bytes = 0

    def add(self, key: str, members: dict[str, bytes]) -> None:
        size = sum(512 + -(-len(data) // 512) * 512 for data in members.values())
        limit = self.options.max_shard_bytes
        if self._tar is None or self._count >= self.options.samples_per_shard or (
                limit is not None and self._count and self._bytes + size > limit):
            self.close()
            self._open()
        for ext, data in members.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
        self._count += 1
        self._bytes += size

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None


class WebDatasetExporter(ExporterBase):
    name = "webdataset"

    def _source_path(self, row: DatasetRow) -> Path:
        from panda_dagster.lib.storage import fetch_source

        local = row.source.local_path
        if local and Path(local).is_file():
            return Path(local)
        cache = self.context.cache_dir or Path(tempfile.gettempdir()) / "panda-export-cache"
        return fetch_source(row.source.uri, cache)

    def _cut(self, row: DatasetRow, tmp: Path, keyframes: dict[str, list[float]]):
        """The clip's MP4 (a `CutClip`); True as second value when a stream copy had to be re-encoded."""
        from panda_dagster.lib.video.cutting import ClipCutError, cut_clip

        mode = self.options.webdataset.cut_mode
        source = self._source_path(row)
        if mode == "copy" and row.video_id not in keyframes:
            keyframes[row.video_id] = keyframe_times(source)
        dest = tmp / f"{row.key}.mp4"
        try:
            return cut_clip(source, dest, row.start_s, row.end_s, mode, keyframes.get(row.video_id)), False
        except ClipCutError:
            if mode != "copy":
                raise
            # Not every codec fits an MP4 (VP8, Vorbis ...): encode this clip instead.
            return cut_clip(source, dest, row.start_s, row.end_s, "reencode"), True

    def write(self, dataset_rows: Sequence[DatasetRow], out_dir: Path) -> FormatOutput:
        started = time.perf_counter()
        opts = self.options.webdataset
        by_bucket: dict[str, list[DatasetRow]] = {}
        for row in dataset_rows:
            by_bucket.setdefault(bucket_of(row, opts), []).append(row)
        files, notes, written, reencoded = [], [], 0, 0
        keyframes: dict[str, list[float]] = {}
        with tempfile.TemporaryDirectory(prefix="panda-wds-") as tmp:
            for bucket, rows in sorted(by_bucket.items()):
                shards = _TarShards(out_dir, f"{WDS_DIR}/{bucket}" if bucket else WDS_DIR, opts)
                try:
                    for row in rows:
                        try:
                            cut, fell_back = self._cut(row, Path(tmp), keyframes)
                        except Exception as exc:  # noqa: BLE001  one unreadable source must not stop the export
                            notes.append(f"{row.clip_id}: not written ({type(exc).__name__}: {exc})")
                            continue
                        reencoded += fell_back
                        record = row.to_json_dict()
                        record["file"] = {"start_s": round(cut.start_s, 6), "end_s": round(cut.end_s, 6),
                                          "cut_mode": cut.mode}
                        shards.add(row.key, {"mp4": cut.path.read_bytes(), "txt": row.caption.encode("utf-8"),
                                             "json": json.dumps(record, ensure_ascii=False, allow_nan=False).encode("utf-8")})
                        cut.path.unlink()
                        written += 1
                finally:
                    shards.close()
                files += shards.files
        if reencoded:
            notes.insert(0, f"{reencoded} clips re-encoded: their source codec cannot be stream-copied into MP4")
        if len(notes) > 10:
            notes = notes[:10] + [f"... and {len(notes) - 10} more clips not written"]
        return FormatOutput(self.name, files, written, files_size(out_dir, files), time.perf_counter() - started,
                            notes)
