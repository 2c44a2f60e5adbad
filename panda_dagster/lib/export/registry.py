"""Every export format, one line each: the `--format` name and the class that writes it (a new format is
one module with an `Exporter` class, see `base.py`, plus one line here)."""

from panda_dagster.lib.export.jsonl import JsonlExporter
from panda_dagster.lib.export.panda70m_csv import Panda70mCsvExporter
from panda_dagster.lib.export.parquet import ParquetExporter
from panda_dagster.lib.export.webdataset import WebDatasetExporter

EXPORTERS = {
    Panda70mCsvExporter.name: Panda70mCsvExporter,
    WebDatasetExporter.name: WebDatasetExporter,
    ParquetExporter.name: ParquetExporter,
    JsonlExporter.name: JsonlExporter,
}
