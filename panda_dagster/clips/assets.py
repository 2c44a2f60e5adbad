"""`clips`: every video of a shard split into semantically coherent clips (Panda-70M) or narration clips
(HowTo100M), with key frames in storage; catalog table `clips`, bad videos in `quarantine`."""

import time

from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, asset
from pydantic import Field

from panda_dagster.clips.checks import CLIPS_CHECK_SPECS, evaluate_clips_checks
from panda_dagster.clips.resources import ClipEmbedderResource
from panda_dagster.common.checks import check_events, selected_checks
from panda_dagster.common.jobs import RANGE_IN_ONE_RUN, TRANSIENT_RETRY
from panda_dagster.common.metadata import histogram, markdown_table
from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.lib.video.split import SplitConfig  # numpy only: no decoder or model imports

_DEFAULTS = SplitConfig()  # one source of truth for the defaults: the library config


class ClipsConfig(Config):
    """Defaults are Panda-70M's collection values; distances are L2 between unit-norm open_clip embeddings."""

    detector: str = Field(default=_DEFAULTS.detector, description="Shot detector: content (PySceneDetect ContentDetector), "
                          "adaptive (AdaptiveDetector) or transnetv2 (pretrained network; GPU when present)")
    threshold: float = Field(default=_DEFAULTS.threshold, description="content: HSV frame-difference threshold")
    min_scene_len: int = Field(default=_DEFAULTS.min_scene_len, description="Shortest shot, in frames (content, adaptive, transnetv2)")
    adaptive_threshold: float = Field(default=_DEFAULTS.adaptive_threshold, description="adaptive: score / neighbourhood-mean ratio")
    transnet_threshold: float = Field(default=_DEFAULTS.transnet_threshold, description="transnetv2: transition probability threshold")
    long_shot_s: float = Field(default=_DEFAULTS.long_shot_s, description="Shots longer than this without a cut are split ...")
    max_shot_s: float = Field(default=_DEFAULTS.max_shot_s, description="... into equal pieces of at most this length")
    stitch: bool = Field(default=_DEFAULTS.stitch, description="Stitch shots into events with open_clip embeddings; "
                         "false = the shots (>= min_clip_s) are the clips")
    transition_dist: float = Field(default=_DEFAULTS.transition_dist, description="Drop a shot whose start/end embeddings are further "
                                   "apart (a transition inside it)")
    stitch_dist: float = Field(default=_DEFAULTS.stitch_dist, description="Join the next shot while distance(last frame of the "
                               "event, first frame of the shot) <= this")
    still_dist: float = Field(default=_DEFAULTS.still_dist, description="Drop events whose start/end distance is below (still)")
    redundant_dist: float = Field(default=_DEFAULTS.redundant_dist, description="Drop events closer than this to a kept one")
    min_clip_s: float = Field(default=_DEFAULTS.min_clip_s, description="Drop clips shorter than this (after trimming)")
    max_clip_s: float = Field(default=_DEFAULTS.max_clip_s, description="Cap clip length")
    trim_frac: float = Field(default=_DEFAULTS.trim_frac, description="Trim this fraction of each event at both ends")
    max_video_s: float | None = Field(default=_DEFAULTS.max_video_s, description="Only split the first N seconds of each video")
    mode: str = Field(default=_DEFAULTS.mode, description="visual (shots/stitching), narration (subtitle cues, "
                      "HowTo100M), both, or auto (narration where a video has cues)")
    narration_min_time_s: float = Field(default=_DEFAULTS.narration_min_time_s, description="Merge cues until a clip lasts this long ...")
    narration_min_words: int = Field(default=_DEFAULTS.narration_min_words, description="... or holds this many words")
    narration_max_gap_s: float = Field(default=_DEFAULTS.narration_max_gap_s, description="Never merge cues further apart than this")
    keyframes_per_clip: int = Field(default=_DEFAULTS.keyframes_per_clip, description="Key frames (JPEG) stored per clip")
    sample_fps: float = Field(default=_DEFAULTS.sample_fps, description="Frames sampled per second for stitching, quality, key frames")
    sample_short_side: int = Field(default=_DEFAULTS.sample_short_side, description="Short side of sampled frames / key frames, pixels")
    skip_loop_filter: str = Field(default=_DEFAULTS.skip_loop_filter, description="Decoder deblocking skipped for: none, noref, "
                                  "bidir or all frames (faster; 'all' can cause false cuts)")
    decode_segments: int = Field(default=_DEFAULTS.decode_segments, description="Decode one long video in "
                                 "this many parallel segments (content/adaptive detectors; identical results): "
                                 "0 = auto (one per idle core for videos >= 60 s), 1 = sequential")
    write_clip_files: bool = Field(default=False, description="Also cut every clip into its own MP4 in storage")
    cut_mode: str = Field(default="copy", description="Clip files: copy (stream copy from the first keyframe "
                          "in the clip) or reencode (frame-exact H.264)")
    workers: int = Field(default=2, description="Videos split in parallel (threads; decoding releases the GIL)")


def _split_config(config: ClipsConfig):
    return SplitConfig(
        detector=config.detector, threshold=config.threshold, min_scene_len=config.min_scene_len,
        adaptive_threshold=config.adaptive_threshold, transnet_threshold=config.transnet_threshold,
        long_shot_s=config.long_shot_s, max_shot_s=config.max_shot_s, stitch=config.stitch,
        transition_dist=config.transition_dist, stitch_dist=config.stitch_dist, still_dist=config.still_dist,
        redundant_dist=config.redundant_dist, min_clip_s=config.min_clip_s, max_clip_s=config.max_clip_s,
        trim_frac=config.trim_frac, max_video_s=config.max_video_s, mode=config.mode,
        narration_min_time_s=config.narration_min_time_s, narration_min_words=config.narration_min_words,
        narration_max_gap_s=config.narration_max_gap_s, keyframes_per_clip=config.keyframes_per_clip,
        sample_fps=config.sample_fps, sample_short_side=config.sample_short_side,
        skip_loop_filter=config.skip_loop_filter, decode_segments=config.decode_segments,
    )


@asset(
    partitions_def=video_shards,
    deps=["raw_videos"],
    group_name="clips",
    kinds={"video", "pytorch", "duckdb"},
    retry_policy=TRANSIENT_RETRY,
    backfill_policy=RANGE_IN_ONE_RUN,
    check_specs=CLIPS_CHECK_SPECS,
    description="Each video decoded once at low resolution: shots (PySceneDetect content/adaptive or "
    "TransNetV2), long shots split, shots stitched into events with open_clip embeddings (Panda-70M), or "
    "narration clips from subtitles (HowTo100M); key frames in storage, split quality per clip. Catalog "
    "table `clips`; partial or undecodable videos in `quarantine` (stage clips).",
)
def clips(context: AssetExecutionContext, config: ClipsConfig, panda: PandaResource,
          clip_embedder: ClipEmbedderResource):
    try:
        split_config = _split_config(config)
    except ValueError as exc:
        raise Failure(f"clips config: {exc}", allow_retries=False) from exc
    if config.cut_mode not in ("copy", "reencode"):
        raise Failure(f"clips config: cut_mode must be copy or reencode, got {config.cut_mode!r}", allow_retries=False)
    shards = context.partition_keys
    summaries, failed, check_outcomes = [], {}, {}
    for shard in shards:
        try:
            summaries.append(_split_one_shard(context, config, split_config, panda, clip_embedder, shard))
            # Checked on what the catalog now holds for the shard.
            check_outcomes[shard] = evaluate_clips_checks(
                panda.catalog(), shard, min_clip_s=config.min_clip_s, max_clip_s=config.max_clip_s,
                max_video_s=config.max_video_s, selected=selected_checks(context))
        except Exception as exc:  # noqa: BLE001  reported below as one Failure; other shards are kept
            context.log.exception(f"shard {shard} failed: {exc}")
            failed[shard] = f"{type(exc).__name__}: {exc}"
    if failed:
        raise Failure(f"clips failed for {len(failed)} of {len(shards)} shards: {', '.join(failed)}",
                      metadata={"failed_shards": MetadataValue.json(failed)})
    if len(summaries) == 1:
        yield MaterializeResult(metadata=summaries[0])
        yield from check_events(context, check_outcomes)
        return
    keys = ("n_videos", "n_clips", "n_quarantined", "n_kept_partial")
    yield MaterializeResult(metadata={
        "n_shards": len(summaries),
        **{k: sum(s[k] for s in summaries) for k in keys},
        "clip_hours": round(sum(s["clip_hours"] for s in summaries), 4),
        "shards": MetadataValue.md(markdown_table(
            [{"shard": s["shard"], **{k: s[k] for k in keys}} for s in summaries], limit=100)),
    })
    yield from check_events(context, check_outcomes)


def _split_one_shard(context, config: ClipsConfig, split_config, panda: PandaResource,
                     clip_embedder: ClipEmbedderResource, shard: str) -> dict:
    from panda_dagster.lib.subtitles import Cue
    from panda_dagster.lib.video.quality import mean_quality
    from panda_dagster.lib.video.shard import STAGE, VideoToSplit, split_shard

    started = time.perf_counter()
    catalog, storage = panda.catalog(), panda.storage()
    videos = catalog.read_shard("videos", shard)
    cue_rows = catalog.read_shard("subtitles", shard)
    cues: dict[str, list] = {}
    for row in cue_rows.sort_values(["video_id", "start_s"]).itertuples(index=False):
        cues.setdefault(str(row.video_id), []).append(Cue(float(row.start_s), float(row.end_s), str(row.text)))
    todo = [VideoToSplit(str(v.video_id), str(v.uri), str(v.local_path), cues.get(str(v.video_id), []))
            for v in videos.itertuples(index=False)]
    needs_embeddings = split_config.stitch and split_config.mode != "narration"
    embed = clip_embedder.embed_images if needs_embeddings else None
    label = clip_embedder.models_label if needs_embeddings else "none"
    notes = []
    if needs_embeddings and clip_embedder.profile_name == "tiny":
        from panda_dagster.lib.video.split import TINY_STILL_NOTE, for_tiny_embeddings

        split_config = for_tiny_embeddings(split_config)
        notes.append(TINY_STILL_NOTE)
        context.log.warning(f"stitching with {label}: clip boundaries are not meaningful; {TINY_STILL_NOTE}")
    context.log.info(f"shard {shard}: splitting {len(todo)} videos with {config.workers} workers, "
                     f"detector {config.detector}, mode {config.mode}")
    split = split_shard(shard, todo, storage, split_config, embed_images=embed, models_label=label,
                        write_clip_files=config.write_clip_files, cut_mode=config.cut_mode,
                        workers=config.workers, log=context.log.warning)
    catalog.replace_shard("clips", shard, split.rows)
    catalog.replace_shard("quarantine", shard, split.quarantine, part=STAGE)

    elapsed = time.perf_counter() - started
    qualities = [r.split_quality for r in split.rows]
    mean_q = mean_quality(qualities)
    durations = [r.end_s - r.start_s for r in split.rows]
    preview = [{"clip_id": r.clip_id[:8], "video_id": r.video_id, "start_s": round(r.start_s, 2),
                "end_s": round(r.end_s, 2), "method": r.method, "shots": r.n_shots_merged,
                "quality": r.split_quality, "keyframe": r.keyframe_uris[0] if r.keyframe_uris else "",
                "narration": (r.narration or "")[:60]} for r in split.rows]
    return {
        "shard": shard,
        "n_videos": len(todo),
        "n_clips": len(split.rows),
        "n_quarantined": sum(1 for q in split.quarantine if q.action == "dropped"),
        "n_kept_partial": sum(1 for q in split.quarantine if q.action == "kept_partial"),
        "clip_hours": round(sum(durations) / 3600, 4),
        "clip_s_mean": round(sum(durations) / len(durations), 3) if durations else 0.0,
        "split_quality_mean": MetadataValue.float(round(mean_q, 4) if mean_q is not None else float("nan")),
        "methods": MetadataValue.json(histogram(r.method for r in split.rows)),
        "dropped_reasons": MetadataValue.json(split.stats["dropped"]),
        "videos_without_clips": MetadataValue.json(split.stats["videos_without_clips"]),
        "detector": config.detector,
        "models_label": label,
        "notes": MetadataValue.json(notes),
        "frames_decoded": split.stats["n_frames"],
        "decode_s": round(split.stats["decode_s"], 2),
        "stitch_s": round(split.stats["stitch_s"], 2),
        "seconds": round(elapsed, 2),
        "frames_per_s": round(split.stats["n_frames"] / elapsed, 1) if elapsed else 0.0,
        "preview": MetadataValue.md(markdown_table(preview)),
        "quarantine": MetadataValue.md(markdown_table(
            [{"uri": q.uri, "action": q.action, "reason": q.reason} for q in split.quarantine])),
    }
