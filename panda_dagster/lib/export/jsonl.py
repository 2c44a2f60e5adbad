"""JSON lines: one line per clip, the same record as the WebDataset `KEY.json` (`DatasetRow.to_json_dict`)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from panda_dagster.lib.export.base import ExporterBase, FormatOutput
from panda_dagster.lib.export.rows import DatasetRow

JSONL_NAME = "clips.jsonl"


def json_line(row: DatasetRow) -> str:
    return json.dumps(row.to_json_dict(), ensure_ascii=False, allow_nan=False)


class JsonlExporter(ExporterBase):
    name = "jsonl"

    def write(self, dataset_rows: Sequence[DatasetRow], out_dir: Path) -> FormatOutput:
        started = time.perf_counter()
        text = "".join(json_line(row) + "\n" for row in dataset_rows)
        return self.one_file(out_dir, JSONL_NAME, text.encode("utf-8"), len(dataset_rows), started)
