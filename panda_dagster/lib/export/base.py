"""What every exporter is: a `name` (the `--format` value), the export's `options`, and
`write(dataset_rows, out_dir)` that writes its files under `out_dir` and says what it wrote.

The options are one dataclass for every format (the `dataset_export` asset's config and the CLI flags
are derived from it); format-specific knobs sit in a nested dataclass of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:  # this module stays light: the CLI reads the option defaults from it
    from panda_dagster.lib.export.rows import DatasetRow

CUT_MODES = ("copy", "reencode")
BUCKET_KEYS = ("resolution", "aspect", "duration")


@dataclass
class WebDatasetOptions:
    """WebDataset tar shards: how clips are cut and how samples are grouped into tars."""

    cut_mode: str = field(default="copy", metadata={"help": "copy: stream copy from the first keyframe in the "
                          "clip (fast; may start a little late); reencode: frame-exact H.264/AAC"})
    samples_per_shard: int = field(default=1000, metadata={"help": "Start a new tar after this many samples"})
    max_shard_bytes: int | None = field(default=None, metadata={"help": "Start a new tar before it would exceed "
                                        "this many bytes (null = by sample count only)"})
    bucket_by: list[str] = field(default_factory=list, metadata={"help": "Group samples into sub-folders by "
                                 "any of: resolution, aspect, duration (as cosmos-curate does)"})
    duration_edges_s: list[float] = field(default_factory=lambda: [2.0, 5.0, 10.0, 20.0],
                                          metadata={"help": "Duration bucket edges, seconds"})

    def __post_init__(self) -> None:
        if self.cut_mode not in CUT_MODES:
            raise ValueError(f"cut_mode must be one of {', '.join(CUT_MODES)}, got {self.cut_mode!r}")
        if self.samples_per_shard < 1:
            raise ValueError(f"samples_per_shard must be >= 1, got {self.samples_per_shard}")
        if self.max_shard_bytes is not None and self.max_shard_bytes < 1:
            raise ValueError(f"max_shard_bytes must be >= 1 or null, got {self.max_shard_bytes}")
        unknown = sorted(set(self.bucket_by) - set(BUCKET_KEYS))
        if unknown:
            raise ValueError(f"bucket_by: unknown key(s) {', '.join(unknown)} (use {', '.join(BUCKET_KEYS)})")
        if list(self.duration_edges_s) != sorted(self.duration_edges_s):
            raise ValueError("duration_edges_s must be increasing")


@dataclass
class ExportOptions:
    """Which clips go out, in which formats, and where."""

    formats: list[str] = field(default_factory=lambda: ["panda70m-csv", "webdataset", "parquet", "jsonl"],
                               metadata={"help": "Any of: panda70m-csv, webdataset, parquet, jsonl"})
    out_dir: str | None = field(default=None, metadata={"help": "Export folder (replaced as a whole); "
                                "null = PANDA_HOME/exports/dataset"})
    shards: list[str] = field(default_factory=list, metadata={"help": "Only these shards (empty = every shard "
                              "with selected captions)"})
    accepted_only: bool = field(default=False, metadata={"help": "Only clips whose caption passed the quality "
                                "bar and the per-video cap"})
    min_score: float | None = field(default=None, metadata={"help": "Only clips whose matching_score is at "
                                    "least this"})
    webdataset: WebDatasetOptions = field(default_factory=WebDatasetOptions,
                                          metadata={"help": "WebDataset tar options"})

    def __post_init__(self) -> None:
        from panda_dagster.lib.export.registry import EXPORTERS

        if isinstance(self.webdataset, dict):
            self.webdataset = WebDatasetOptions(**self.webdataset)
        if not self.formats:
            raise ValueError("formats: name at least one format")
        unknown = [f for f in self.formats if f not in EXPORTERS]
        if unknown:
            raise ValueError(f"unknown export format(s) {', '.join(unknown)}; known: {', '.join(EXPORTERS)}")
        self.formats = list(dict.fromkeys(self.formats))  # repeated names export once


@dataclass
class ExportContext:
    """Where an exporter may read sources from (only WebDataset reads video bytes)."""

    cache_dir: Path | None = None  # downloads of remote sources (PANDA_HOME/cache)


@dataclass
class FormatOutput:
    """What one exporter wrote (paths relative to the export folder)."""

    format: str
    files: list[str]
    n_rows: int  # clips written (CSV: also per video, see notes)
    n_bytes: int
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


class Exporter(Protocol):
    name: ClassVar[str]  # the --format value
    options: ExportOptions

    def __init__(self, options: ExportOptions, context: ExportContext | None = None) -> None: ...

    def write(self, dataset_rows: Sequence[DatasetRow], out_dir: Path) -> FormatOutput: ...


def files_size(out_dir: Path, files: Sequence[str]) -> int:
    return sum((out_dir / f).stat().st_size for f in files)


class ExporterBase:
    """What the built-in exporters share: the constructor, and writing a format that is one file."""

    name: ClassVar[str]

    def __init__(self, options: ExportOptions, context: ExportContext | None = None):
        self.options = options
        self.context = context or ExportContext()

    def one_file(self, out_dir: Path, name: str, data: bytes, n_rows: int, started: float,
                 notes: Sequence[str] = ()) -> FormatOutput:
        (out_dir / name).write_bytes(data)
        return FormatOutput(self.name, [name], n_rows, len(data), time.perf_counter() - started, list(notes))
