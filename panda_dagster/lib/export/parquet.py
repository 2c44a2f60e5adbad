"""Parquet: one row per clip with everything the catalog knows about it, one file per catalog shard
(`parquet/<shard>.parquet`, the `shard` column inside). Candidates, filter scores and subtitle lines are
list-of-struct columns, so Hugging Face `datasets`, DuckDB and pandas all read the files as they are."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from panda_dagster.lib.export.base import ExporterBase, FormatOutput, files_size
from panda_dagster.lib.export.panda70m_csv import panda_timecode
from panda_dagster.lib.export.rows import DatasetRow

PARQUET_DIR = "parquet"


def parquet_schema():
    import pyarrow as pa

    s, f, i, b = pa.string(), pa.float64(), pa.int64(), pa.bool_()
    candidate = pa.struct([("teacher", s), ("caption", s), ("kind", s), ("model_id", s), ("revision", s),
                           ("profile", s), ("score", f), ("rank", i), ("selected", b)])
    return pa.schema([
        ("clip_id", s), ("shard", s), ("video_id", s),
        ("start_s", f), ("end_s", f), ("duration_s", f), ("timestamp", pa.list_(s)),
        ("start_frame", i), ("end_frame", i), ("method", s), ("detector", s), ("n_shots_merged", i),
        ("split_quality", f), ("narration", s), ("keyframe_uris", pa.list_(s)), ("clip_uri", s),
        ("clip_models_label", s),
        ("caption", s), ("teacher", s), ("matching_score", f), ("margin_to_second", f), ("accepted", b),
        ("reject_reason", s), ("n_candidates", i), ("scorer", s), ("selection_model_version", s),
        ("models_label", s),
        ("source_uri", s), ("source_sha256", s), ("title", s), ("description", s), ("page_url", s),
        ("license", s), ("width", i), ("height", i), ("fps", f), ("video_duration_s", f), ("codec", s),
        ("container", s), ("has_audio", b),
        ("candidates", pa.list_(candidate)),
        ("filter_keep", b), ("filter_reasons", pa.list_(s)),
        ("filter_scores", pa.list_(pa.struct([("name", s), ("value", f)]))), ("duplicate_of", s),
        ("subtitles", pa.list_(pa.struct([("start_s", f), ("end_s", f), ("text", s), ("source", s)]))),
    ])


def parquet_record(row: DatasetRow) -> dict:
    src, flt = row.source, row.filters
    return {
        "clip_id": row.clip_id, "shard": row.shard, "video_id": row.video_id,
        "start_s": row.start_s, "end_s": row.end_s, "duration_s": row.duration_s,
        "timestamp": [panda_timecode(row.start_s), panda_timecode(row.end_s)],
        "start_frame": row.start_frame, "end_frame": row.end_frame, "method": row.method,
        "detector": row.detector, "n_shots_merged": row.n_shots_merged, "split_quality": row.split_quality,
        "narration": row.narration, "keyframe_uris": row.keyframe_uris, "clip_uri": row.clip_uri,
        "clip_models_label": row.clip_models_label,
        "caption": row.caption, "teacher": row.teacher, "matching_score": row.matching_score,
        "margin_to_second": row.margin_to_second, "accepted": row.accepted, "reject_reason": row.reject_reason,
        "n_candidates": row.n_candidates, "scorer": row.scorer,
        "selection_model_version": row.selection_model_version, "models_label": row.models_label,
        "source_uri": src.uri, "source_sha256": src.sha256, "title": src.title, "description": src.description,
        "page_url": src.url, "license": src.license, "width": src.width, "height": src.height, "fps": src.fps,
        "video_duration_s": src.duration_s, "codec": src.codec, "container": src.container,
        "has_audio": src.has_audio,
        "candidates": [vars(c) for c in row.candidates],
        "filter_keep": flt.keep if flt else None,
        "filter_reasons": list(flt.reasons) if flt else None,
        "filter_scores": [{"name": k, "value": v} for k, v in flt.scores.items()] if flt else None,
        "duplicate_of": flt.duplicate_of if flt else None,
        "subtitles": [vars(c) for c in row.subtitles],
    }


class ParquetExporter(ExporterBase):
    name = "parquet"

    def write(self, dataset_rows: Sequence[DatasetRow], out_dir: Path) -> FormatOutput:
        import pyarrow as pa
        import pyarrow.parquet as pq

        started = time.perf_counter()
        folder = out_dir / PARQUET_DIR
        folder.mkdir(parents=True, exist_ok=True)
        by_shard: dict[str, list[DatasetRow]] = {}
        for row in dataset_rows:
            by_shard.setdefault(row.shard, []).append(row)
        schema = parquet_schema()
        files = []
        for shard, rows in sorted(by_shard.items()):
            table = pa.Table.from_pylist([parquet_record(r) for r in rows], schema=schema)
            name = f"{PARQUET_DIR}/{shard}.parquet"
            pq.write_table(table, out_dir / name, compression="zstd")
            files.append(name)
        notes = [] if files else ["no clips to export: no Parquet file written"]
        return FormatOutput(self.name, files, len(dataset_rows), files_size(out_dir, files),
                            time.perf_counter() - started, notes)
