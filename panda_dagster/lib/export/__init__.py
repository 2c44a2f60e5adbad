"""Exporting the curated dataset: Panda-70M CSV, WebDataset tars, Parquet, JSON lines, and a dataset card.

- `rows.py`: the clips an export holds, assembled once from the catalog (`load_dataset_rows`);
- `base.py`: the exporter protocol and the options every format shares;
- `registry.py`: one line per format; one module per format (`panda70m_csv.py`, `webdataset.py`,
  `parquet.py`, `jsonl.py`);
- `card.py`: DATASET_CARD.md; `run.py`: `export_dataset`, which writes every format into a temporary
  folder beside the target and swaps it in, so a failed export leaves the previous one intact.
"""
