"""`clips`: every video of a shard split into semantically coherent clips (Panda-70M) or narration clips
(HowTo100M), with key frames in storage and their embeddings; catalog tables `clips` and
`keyframe_embeddings`, bad videos in `quarantine`."""

from dagster import AssetExecutionContext, Failure, MetadataValue

from panda_dagster.clips.checks import CLIPS_CHECK_SPECS, evaluate_clips_checks
from panda_dagster.clips.resources import ClipEmbedderResource
from panda_dagster.common.checks import selected_checks
from panda_dagster.common.config import dagster_config_from
from panda_dagster.common.jobs import Group
from panda_dagster.common.metadata import histogram, markdown_table
from panda_dagster.common.resources import PandaResource
from panda_dagster.common.runner import ShardResult, run_shards, shard_asset
from panda_dagster.common.stage_config import lib_config_or_fail
from panda_dagster.lib.video.cutting import CUT_MODES
from panda_dagster.lib.video.split import SplitConfig  # numpy only: no decoder or model imports

# The run config is the library's SplitConfig (defaults and help texts live there), plus what only the
# stage decides.
ClipsConfig = dagster_config_from(SplitConfig, name="ClipsConfig", exclude=("threads",), extra={
    "write_clip_files": (bool, False, "Also cut every clip into its own MP4 in storage"),
    "cut_mode": (str, "copy", "Clip files: copy (stream copy from the first keyframe in the clip) or reencode "
                 "(frame-exact H.264)"),
    "workers": (int, 2, "Videos split in parallel (threads; decoding releases the GIL)"),
})


@shard_asset(
    group=Group.CLIPS,
    deps=["raw_videos", "transcripts"],
    kinds={"video", "pytorch", "duckdb"},
    check_specs=CLIPS_CHECK_SPECS,
    description="Each video decoded once at low resolution: shot boundaries (cuts and gradual transitions; "
    "detector chosen by name), long shots split, shots stitched into events with image embeddings "
    "(Panda-70M), or narration clips from subtitle/ASR cues (HowTo100M); key frames in storage and embedded "
    "once (table `keyframe_embeddings`), split quality per clip. Catalog table `clips`; partial or "
    "undecodable videos in `quarantine` (stage clips).",
)
def clips(context: AssetExecutionContext, config: ClipsConfig, panda: PandaResource,
          clip_embedder: ClipEmbedderResource):
    split_config = lib_config_or_fail(config, "clips")
    if config.cut_mode not in CUT_MODES:
        raise Failure(f"clips config: cut_mode must be one of {CUT_MODES}, got {config.cut_mode!r}",
                      allow_retries=False)
    split_config.detectors.transnetv2.device = clip_embedder.resolved_device  # the device comes from resources
    split_config.stitching = clip_embedder.stitching_for(split_config.stitching)  # the embedder's distances

    def one_shard(shard: str) -> ShardResult:
        from panda_dagster.lib.models.keyframes import TABLE as KEYFRAME_TABLE
        from panda_dagster.lib.video.shard import STAGE, clips_for_shard

        catalog = panda.catalog()
        context.log.info(f"shard {shard}: splitting with {config.workers} workers, detector "
                         f"{split_config.detector}, mode {split_config.mode}")
        out = clips_for_shard(catalog, panda.storage(), shard, split_config, embedder=clip_embedder.model(),
                              embedder_is_tiny=clip_embedder.is_tiny, write_clip_files=config.write_clip_files,
                              cut_mode=config.cut_mode, workers=config.workers, log=context.log.warning)
        catalog.replace_shard("clips", shard, out.split.rows)
        catalog.replace_shard("quarantine", shard, out.split.quarantine, part=STAGE)
        catalog.delete_shard(KEYFRAME_TABLE, shard)  # the key frames were just rewritten: every model's rows are stale
        if out.embedding_model_id is not None:
            catalog.replace_shard(KEYFRAME_TABLE, shard, out.keyframe_rows, part=out.embedding_model_id)
        checks = evaluate_clips_checks(catalog, shard, min_clip_s=split_config.stitching.min_clip_s,
                                       max_clip_s=split_config.stitching.max_clip_s,
                                       max_video_s=split_config.max_video_s, selected=selected_checks(context))
        return ShardResult(_metadata(shard, out, split_config.detector), checks)

    yield from run_shards(context, one_shard)


def _metadata(shard: str, out, detector: str) -> dict:
    from panda_dagster.lib.video.quality import mean_quality

    split = out.split
    mean_q = mean_quality([r.split_quality for r in split.rows])
    durations = [r.end_s - r.start_s for r in split.rows]
    preview = [{"clip_id": r.clip_id[:8], "video_id": r.video_id, "start_s": round(r.start_s, 2),
                "end_s": round(r.end_s, 2), "method": r.method, "shots": r.n_shots_merged,
                "quality": r.split_quality, "keyframe": r.keyframe_uris[0] if r.keyframe_uris else "",
                "narration": (r.narration or "")[:60]} for r in split.rows]
    decode_s = split.stats["decode_s"]
    return {
        "shard": shard,
        "n_videos": out.videos,
        "n_clips": len(split.rows),
        "n_quarantined": sum(1 for q in split.quarantine if q.action == "dropped"),
        "n_kept_partial": sum(1 for q in split.quarantine if q.action == "kept_partial"),
        "n_keyframes_embedded": out.n_keyframes_embedded,
        "n_gradual_transitions": split.stats.get("n_gradual", 0),
        "n_motion_frames_stored": split.stats.get("n_motion_frames_stored", 0),  # clip_filters reads them
        "clip_hours": round(sum(durations) / 3600, 4),
        "clip_s_mean": round(sum(durations) / len(durations), 3) if durations else 0.0,
        "split_quality_mean": MetadataValue.float(round(mean_q, 4) if mean_q is not None else float("nan")),
        "methods": MetadataValue.json(histogram(r.method for r in split.rows)),
        "dropped_reasons": MetadataValue.json(split.stats["dropped"]),
        "videos_without_clips": MetadataValue.json(split.stats["videos_without_clips"]),
        "detector": detector,
        "models_label": out.models_label,
        "embedding_model": out.embedding_model_id or "none",
        "notes": MetadataValue.json(out.notes),
        "frames_decoded": split.stats["n_frames"],
        "decode_s": round(decode_s, 2),
        "stitch_s": round(split.stats["stitch_s"], 2),
        "frames_per_s": round(split.stats["n_frames"] / split.seconds, 1) if split.seconds else 0.0,
        "preview": MetadataValue.md(markdown_table(preview)),
        "quarantine": MetadataValue.md(markdown_table(
            [{"uri": q.uri, "action": q.action, "reason": q.reason} for q in split.quarantine])),
    }
