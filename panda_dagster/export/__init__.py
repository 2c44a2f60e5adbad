"""Stage: export (the curated dataset as Panda-70M CSV, WebDataset, Parquet and JSON lines)."""
