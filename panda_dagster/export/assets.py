"""`dataset_export`: every shard's selected clips written out for training code (Panda-70M CSV, WebDataset,
Parquet, JSON lines) with a DATASET_CARD.md; the work is `lib/export/run.export_dataset`."""

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from panda_dagster.common.config import dagster_config_from
from panda_dagster.common.jobs import Group
from panda_dagster.common.metadata import markdown_table
from panda_dagster.common.resources import PandaResource
from panda_dagster.lib.export.base import ExportOptions

DatasetExportConfig = dagster_config_from(ExportOptions, name="DatasetExportConfig")


@asset(
    deps=["selected_captions"],
    group_name=Group.EXPORT,
    kinds={"parquet", "csv"},
    description="The curated dataset for training code: Panda-70M metadata CSV (one row per video, per-clip "
    "lists), WebDataset tars (KEY.mp4/.txt/.json), Parquet (one row per clip, one file per shard) and JSON "
    "lines, plus DATASET_CARD.md. Every clip with a selected caption (with its `accepted` flag) unless "
    "config narrows it; quarantined and filtered-out clips never. The folder is replaced as a whole. "
    "Same export as `panda export`.",
)
def dataset_export(context: AssetExecutionContext, config: DatasetExportConfig, panda: PandaResource):
    from panda_dagster.lib.export.rows import ExportSelectionError
    from panda_dagster.lib.export.run import ExportError, export_dataset

    try:
        options = config.to_lib()
        result = export_dataset(panda.catalog(), options, cache_dir=panda.home_path / "cache")
    except (ValueError, ExportError, ExportSelectionError) as exc:
        raise Failure(f"dataset_export: {exc}", allow_retries=False) from exc
    if result.tiny_models:
        context.log.warning("the exported captions/scores come from TINY random-weight models (see the card)")
    for output in result.outputs:
        for note in output.notes:
            context.log.info(f"{output.format}: {note}")
    return MaterializeResult(metadata={
        "out_dir": MetadataValue.path(str(result.out_dir)),
        "n_clips": result.n_clips,
        "n_videos": len({(r.shard, r.video_id) for r in result.selection.rows}),
        "n_bytes": result.n_bytes,
        "shards": MetadataValue.json(result.selection.shards),
        "excluded": MetadataValue.json(dict(result.selection.excluded)),
        "formats": MetadataValue.md(markdown_table(
            [{"format": o.format, "files": len(o.files), "rows": o.n_rows, "bytes": o.n_bytes,
              "seconds": round(o.seconds, 2)} for o in result.outputs])),
        **{f"n_rows.{o.format}": o.n_rows for o in result.outputs},
        **{f"bytes.{o.format}": o.n_bytes for o in result.outputs},
        "tiny_models": result.tiny_models,
        "seconds": round(result.seconds, 2),
        "preview": MetadataValue.md(markdown_table(result.preview())),
    })
