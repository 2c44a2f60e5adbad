"""`clip_filters`: every clip of a shard scored by the clip filters (motion, still, text overlay, NSFW,
technical quality, near-duplicates) and kept or dropped with reasons, before any caption is paid for."""

from dagster import AssetExecutionContext, MetadataValue

from panda_dagster.clips.resources import ClipEmbedderResource
from panda_dagster.common.checks import selected_checks
from panda_dagster.common.config import dagster_config_from
from panda_dagster.common.jobs import Group
from panda_dagster.common.metadata import markdown_table
from panda_dagster.common.resources import PandaResource
from panda_dagster.common.runner import ShardResult, run_shards, shard_asset
from panda_dagster.common.stage_config import lib_config_or_fail
from panda_dagster.filters.checks import CLIP_FILTERS_CHECK_SPECS, evaluate_clip_filters_checks
from panda_dagster.lib.filters.registry import FiltersParams  # dataclasses only: no model imports

STAGE = "clip_filters"
ClipFiltersConfig = dagster_config_from(FiltersParams, name="ClipFiltersConfig")


@shard_asset(
    group=Group.FILTERS,
    deps=["clips"],
    kinds={"video", "duckdb"},
    check_specs=CLIP_FILTERS_CHECK_SPECS,
)
def clip_filters(context: AssetExecutionContext, config: ClipFiltersConfig, panda: PandaResource,
                 clip_embedder: ClipEmbedderResource):
    """Each clip scored on its key frames and small frames 0.25 s apart: camera vs object motion (DIS flow
    minus a homography), still images, text overlays (PP-OCR), NSFW (open_nsfw), sharpness, exposure,
    resolution, and near-duplicates within and across shards (pHash, key-frame embeddings). Catalog table
    `clip_filters` (keep, reasons, every score); teacher_captions captions kept clips only."""
    params = lib_config_or_fail(config, STAGE)
    # Embeddings of random-weight (tiny) models say nothing about duplicates: pHash only then.
    use_embeddings = not clip_embedder.is_tiny
    yield from run_shards(context, lambda shard: _one_shard(context, params, panda, use_embeddings, shard))


def _one_shard(context, params: FiltersParams, panda: PandaResource, use_embeddings: bool, shard: str) -> ShardResult:
    import base64

    from panda_dagster.lib.filters.plots import score_histograms_png, thresholds
    from panda_dagster.lib.filters.run import score_histograms
    from panda_dagster.lib.filters.shard import dropped_preview, filter_catalog_shard, models_used, quarantine_rows
    from panda_dagster.lib.storage import artifact_reader

    catalog, storage = panda.catalog(), panda.storage()
    result = filter_catalog_shard(catalog, storage, shard, params, read_artifact=artifact_reader(storage),
                                  use_embeddings=use_embeddings)
    uris = {v.video_id: v.uri for v in catalog.rows("videos", shard)}
    catalog.replace_shard("quarantine", shard, quarantine_rows(result, uris, shard, STAGE), part=STAGE)
    for note in result.notes:
        context.log.info(f"shard {shard}: {note}")
    n_clips = len(result.rows)
    metadata = {
        "n_clips": n_clips,
        "n_kept": result.n_kept,
        "kept_share": MetadataValue.float(round(result.n_kept / n_clips, 4) if n_clips else 1.0),
        "reasons": MetadataValue.json(result.reasons),
        "cpu_s_per_filter": MetadataValue.json(result.cpu_s),
        "notes": MetadataValue.json(result.notes),
        "models": MetadataValue.json(models_used(params)),
        "n_errors": len(result.errors),
        "n_duplicates_kept_elsewhere": result.n_duplicates_kept_elsewhere,
        "dropped": MetadataValue.md(markdown_table(dropped_preview(result), limit=30)),
    }
    png = score_histograms_png(score_histograms(result.rows), thresholds(params), f"clip_filters {shard}")
    if png:
        metadata["score_histograms"] = MetadataValue.md(
            f"![scores](data:image/png;base64,{base64.b64encode(png).decode('ascii')})")
        metadata["score_histograms_uri"] = storage.put_bytes(f"shards/{shard}/clip_filters/scores.png", png)
    return ShardResult(metadata, evaluate_clip_filters_checks(catalog, shard, selected_checks(context)))
