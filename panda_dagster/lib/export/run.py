"""One export: select the rows, write every asked-for format and the card into a temporary folder beside
the target, then swap it in. Re-exporting replaces the whole folder (never appends); a failure before
the swap leaves the previous export as it was."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.export.base import ExportContext, ExportOptions, FormatOutput
from panda_dagster.lib.export.card import CARD_NAME, card_text, models_were_random
from panda_dagster.lib.export.registry import EXPORTERS
from panda_dagster.lib.export.rows import DatasetSelection, load_dataset_rows
from panda_dagster.lib.ids import file_sha256

EXPORT_MANIFEST = "export.json"  # marks a folder as an export (only such folders are ever replaced)
EXPORTS_DIR = "exports"


class ExportError(Exception):
    """The export cannot be written where it was asked to go."""


@dataclass
class ExportResult:
    out_dir: Path
    outputs: list[FormatOutput]
    selection: DatasetSelection
    seconds: float
    tiny_models: bool
    files: dict[str, int] = field(default_factory=dict)  # relative path -> bytes

    @property
    def n_clips(self) -> int:
        return len(self.selection.rows)

    @property
    def n_bytes(self) -> int:
        return sum(self.files.values())

    def preview(self, limit: int = 10) -> list[dict]:
        return [{"clip_id": r.clip_id[:8], "video_id": r.video_id, "start_s": round(r.start_s, 3),
                 "end_s": round(r.end_s, 3), "teacher": r.teacher, "score": round(r.matching_score, 4),
                 "accepted": r.accepted, "caption": r.caption[:80]} for r in self.selection.rows[:limit]]


def default_out_dir(home: Path) -> Path:
    return Path(home) / EXPORTS_DIR / "dataset"


def _check_target(target: Path) -> None:
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and
                                                    not (target / EXPORT_MANIFEST).is_file())):
        raise ExportError(f"{target} exists and is not an earlier export (no {EXPORT_MANIFEST}): "
                          "refusing to replace it; choose another --out")


def _recover_interrupted_swap(target: Path) -> None:
    """A crash between the two renames of a swap leaves the previous export as `.NAME.old-*`: put it back."""
    if target.exists():
        return
    olds = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds:
        os.rename(olds[-1], target)


def _swap_in(tmp: Path, target: Path) -> None:
    os.chmod(tmp, 0o755)  # mkdtemp made it private
    if not target.exists():
        os.rename(tmp, target)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(target, old)
    os.rename(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def export_dataset(catalog: Catalog, options: ExportOptions, *, cache_dir: Path | None = None) -> ExportResult:
    """Write `options.formats` for the selected clips to `options.out_dir` (default PANDA_HOME/exports/dataset)."""
    started = time.perf_counter()
    target = Path(options.out_dir).expanduser() if options.out_dir else default_out_dir(catalog.home)
    target = target.absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover_interrupted_swap(target)
    _check_target(target)
    selection = load_dataset_rows(catalog, options.shards, accepted_only=options.accepted_only,
                                  min_score=options.min_score)
    context = ExportContext(cache_dir=cache_dir or catalog.home / "cache")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        outputs = [EXPORTERS[name](options, context).write(selection.rows, tmp) for name in options.formats]
        (tmp / CARD_NAME).write_text(card_text(selection, options, outputs, target.name), encoding="utf-8")
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        manifest = {
            "options": asdict(options),
            "shards": selection.shards,
            "n_clips": len(selection.rows),
            "n_videos": len({(r.shard, r.video_id) for r in selection.rows}),
            "excluded": dict(sorted(selection.excluded.items())),
            "formats": {o.format: {"files": o.files, "n_rows": o.n_rows, "n_bytes": o.n_bytes} for o in outputs},
            "sha256": {f: file_sha256(tmp / f) for f in files},
        }
        (tmp / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        sizes = {f: (tmp / f).stat().st_size for f in [*files, EXPORT_MANIFEST]}
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(target, outputs, selection, time.perf_counter() - started,
                        models_were_random(selection.rows), sizes)
