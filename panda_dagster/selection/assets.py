"""`selected_captions` (per shard) and `selection_model` (fine-tuned on human caption choices)."""


import base64
import time
from dataclasses import asdict

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from panda_dagster.common.checks import check_events, selected_checks
from panda_dagster.common.jobs import GPU_POOL, MODEL_BACKFILL, TRANSIENT_RETRY
from panda_dagster.common.metadata import combine_shard_metadata, markdown_table
from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.selection.checks import SELECTED_CAPTIONS_CHECK_SPECS, evaluate_selection_checks
from panda_dagster.selection.resources import CaptionScorerResource

GROUP = "captions"
STAGE = "selected_captions"


def _png_markdown(png: bytes, title: str) -> MetadataValue:
    return MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})")


class SelectedCaptionsConfig(Config):
    min_score: float | None = Field(
        default=0.28,
        description="Quality bar: a clip is `accepted` when its selected caption scores above this (cosine). "
        "0.28 is LAION-5B's CLIP filter; Panda-70M's 10M subset used > 0.43 on its own fine-tuned model's "
        "scale. null = no bar.",
    )
    max_clips_per_video: int | None = Field(
        default=None, description="Accept at most this many clips per video, best scores first "
        "(Panda-70M's 10M subset keeps <= 3); null = no cap",
    )
    use_selection_model: bool = Field(
        default=True, description="Score with the newest fine-tuned selection model of this models profile "
        "(falls back to the base model when none exists)",
    )
    clips_per_batch: int = Field(default=64, description="Clips whose key frames are embedded together")
    image_batch_size: int = Field(default=64, description="Key frames per forward pass")


@asset(
    partitions_def=video_shards,
    deps=["teacher_captions", "selection_model"],
    group_name=GROUP,
    kinds={"pytorch", "duckdb"},
    pool=GPU_POOL,
    retry_policy=TRANSIENT_RETRY,
    backfill_policy=MODEL_BACKFILL,
    check_specs=SELECTED_CAPTIONS_CHECK_SPECS,
    description="For every clip of the shard, all teacher captions scored against the clip (open_clip: "
    "normalised mean of key-frame embeddings vs caption embedding, cosine) and the best one selected, with "
    "its margin to the runner-up; a quality bar and an optional per-video cap mark clips `accepted`. Uses "
    "the newest materialized `selection_model` (fine-tuned on human choices) when there is one. Catalog "
    "tables `selected_captions` and `caption_scores`; clips whose key frames cannot be read go to "
    "`quarantine`.",
)
def selected_captions(
    context: AssetExecutionContext, config: SelectedCaptionsConfig, panda: PandaResource,
    caption_scorer: CaptionScorerResource,
):
    from panda_dagster.common.metadata import histogram
    from panda_dagster.lib.records import QuarantineRecord
    from panda_dagster.lib.selection.inputs import load_shard_clips
    from panda_dagster.lib.selection.report import sample_rows, score_histogram_png
    from panda_dagster.lib.selection.scorer import (
        SelectionPolicy,
        select_captions,
        storage_frames_loader,
        teacher_win_rates,
    )

    catalog, storage = panda.catalog(), panda.storage()
    scorer, info = caption_scorer.scorer(storage, config.use_selection_model)
    if info is None:
        why = "disabled by config" if not config.use_selection_model else "no selection model materialized yet"
        model_note = f"base model {scorer.name} ({why})"
    else:
        model_note = (f"selection_model {info.version}: validation selection accuracy "
                      f"{info.tuned_val_accuracy} (base {info.base_val_accuracy}), {info.n_labels} labels")
    if caption_scorer.profile_name == "tiny":
        context.log.warning(f"scores come from {caption_scorer.models_label}")
    policy = SelectionPolicy(config.min_score, config.max_clips_per_video)

    # A backfill run may hand this step several shards: the scorer is loaded once for all of them.
    metadata_by_shard, outcomes = {}, {}
    for shard in context.partition_keys:
        started = time.perf_counter()
        clips = load_shard_clips(catalog, shard)
        context.log.info(f"shard {shard}: scoring {len(clips)} clips with {model_note} on "
                         f"{caption_scorer.resolved_device}")
        scored, unscorable = scorer.score(clips, storage_frames_loader(storage), config.clips_per_batch,
                                          config.image_batch_size)
        selected, score_rows = select_captions(scored, policy, scorer.name, caption_scorer.models_label,
                                               info.version if info else None)
        quarantine = [
            QuarantineRecord(shard, f"clip:{u.clip_id}", STAGE, u.reason, u.video_id, "dropped")
            for u in unscorable if u.reason != "no candidate captions"
        ]
        for q in quarantine:
            context.log.warning(f"quarantine {q.uri}: {q.reason}")
        catalog.replace_shard("selected_captions", shard, selected)
        catalog.replace_shard("caption_scores", shard, score_rows)
        catalog.replace_shard("quarantine", shard, quarantine, part=STAGE)

        elapsed = time.perf_counter() - started
        n_accepted = sum(s.accepted for s in selected)
        no_candidates = sum(1 for u in unscorable if u.reason == "no candidate captions")
        metadata: dict[str, object] = {
            "scorer": MetadataValue.text(scorer.name),
            "selection_model": MetadataValue.text(model_note),
            "models": MetadataValue.text(caption_scorer.models_label),
            "n_clips": len(clips),
            "n_selected": len(selected),
            "n_without_candidates": no_candidates,
            "n_quarantined": len(quarantine),
            "n_accepted": n_accepted,
            "accepted_rate": round(n_accepted / len(selected), 4) if selected else 0.0,
            "reject_reasons": MetadataValue.json(histogram(s.reject_reason for s in selected if not s.accepted)),
            "matching_score_mean": round(sum(s.matching_score for s in selected) / len(selected), 4) if selected else 0.0,
            "margin_mean": round(sum(s.margin_to_second for s in selected) / len(selected), 4) if selected else 0.0,
            "teacher_win_rates": MetadataValue.md(markdown_table(
                [{"teacher": t, "win_rate": r} for t, r in teacher_win_rates(selected).items()])),
            "sample": MetadataValue.md(markdown_table(sample_rows(selected))),
            "seconds": round(elapsed, 2),
            "clips_per_s": round(len(clips) / elapsed, 2) if elapsed else 0.0,
        }
        png = score_histogram_png(selected, config.min_score, f"{shard}: {scorer.name}")
        if png:
            metadata["score_histogram"] = _png_markdown(png, "matching scores")
            metadata["score_histogram_in_storage"] = MetadataValue.text(
                storage.put_bytes(f"shards/{shard}/selection/score_histogram.png", png))
        metadata_by_shard[shard] = metadata
        outcomes[shard] = evaluate_selection_checks(catalog, shard, STAGE, selected_checks(context))
    yield MaterializeResult(metadata=combine_shard_metadata(metadata_by_shard))
    yield from check_events(context, outcomes)


class SelectionModelConfig(Config):
    epochs: int = Field(default=5, description="Passes over the training clips")
    batch_size: int = Field(default=32, description="Labelled clips per step")
    learning_rate: float = Field(default=1e-5, description="AdamW peak rate (warm-up, then cosine decay)")
    weight_decay: float = Field(default=0.1)
    contrastive_weight: float = Field(default=0.5, description="Weight of the clip/caption InfoNCE term")
    val_fraction: float = Field(default=0.2, description="Share of labelled videos held out for validation")
    seed: int = Field(default=0)
    unlocked_image_groups: int | None = Field(
        default=4, description="Train only the last N groups of the image tower (null = all of it)")
    unlocked_text_layers: int | None = Field(
        default=4, description="Train only the last N text transformer layers (null = all of them)")
    max_frames_per_clip: int = Field(default=4)
    min_labels: int = Field(default=20, description="Fewer usable labels than this: keep using the base model")
    retrain_unchanged: bool = Field(
        default=False, description="Train again even when the labels and settings equal the newest model's")


@asset(
    group_name=GROUP,
    kinds={"pytorch"},
    pool="gpu",
    description="The caption scorer fine-tuned on human choices (`panda label import` → catalog table "
    "`caption_preferences`): the chosen caption must outscore the clip's other candidates, plus a contrastive "
    "term; 'all bad' clips excluded; split by video into train/validation; selection accuracy (R@1 against "
    "the human choice) of the base and the fine-tuned model measured on validation. Stored as a versioned "
    "checkpoint under `models/selection/<version>/`; `selected_captions` uses the newest. Without labels, "
    "nothing is trained and the base model stays in use.",
)
def selection_model(
    context: AssetExecutionContext, config: SelectionModelConfig, panda: PandaResource,
    caption_scorer: CaptionScorerResource,
) -> MaterializeResult:
    from panda_dagster.lib.selection.finetune import (
        FinetuneConfig,
        finetune_scorer,
        labels_fingerprint,
        latest_selection_model,
        publish_selection_model,
    )
    from panda_dagster.lib.selection.inputs import load_preference_examples
    from panda_dagster.lib.selection.scorer import storage_frames_loader

    started = time.perf_counter()
    catalog, storage = panda.catalog(), panda.storage()
    examples, n_all_bad = load_preference_examples(catalog)
    n_videos = len({e.video_id for e in examples})
    base_metadata = {"n_labels": len(examples), "n_all_bad_excluded": n_all_bad, "n_labelled_videos": n_videos,
                     "models": MetadataValue.text(caption_scorer.models_label)}
    if len(examples) < max(config.min_labels, 2) or n_videos < 2:
        reason = (f"{len(examples)} usable labels from {n_videos} videos (need {config.min_labels} from at least "
                  f"2 videos): no selection model trained; selected_captions uses the base model "
                  f"({caption_scorer.base_model_name}). Label clips with `panda label export` / `panda label import`.")
        context.log.warning(reason)
        return MaterializeResult(metadata={**base_metadata, "status": MetadataValue.text("base model (no labels)"),
                                           "note": MetadataValue.text(reason)})

    finetune_config = FinetuneConfig(
        epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
        weight_decay=config.weight_decay, contrastive_weight=config.contrastive_weight,
        val_fraction=config.val_fraction, seed=config.seed, unlocked_image_groups=config.unlocked_image_groups,
        unlocked_text_layers=config.unlocked_text_layers, max_frames_per_clip=config.max_frames_per_clip,
    )
    labels_sha = labels_fingerprint(examples)
    newest = latest_selection_model(storage, caption_scorer.profile_name)
    if (newest and not config.retrain_unchanged and newest.labels_sha == labels_sha
            and newest.config == asdict(finetune_config)):
        context.log.info(f"labels and settings unchanged since selection model {newest.version}: kept")
        info, status = newest, "unchanged (same labels and settings)"
    else:
        base = caption_scorer.base_model()
        result = finetune_scorer(base, examples, finetune_config, storage_frames_loader(storage), log=context.log.info)
        info, status = publish_selection_model(storage, base, result, labels_sha, len(examples)), "trained"
    if caption_scorer.profile_name == "tiny":
        context.log.warning(f"selection model built on {caption_scorer.models_label}")
    metadata = {
        **base_metadata,
        "status": MetadataValue.text(status),
        "version": MetadataValue.text(info.version),
        "checkpoint": MetadataValue.text(storage.uri(info.checkpoint_key)),
        "base_model": MetadataValue.text(f"open_clip {info.base_model_name} {info.base_pretrained}"),
        "base_val_selection_accuracy": info.base_val_accuracy,
        "finetuned_val_selection_accuracy": info.tuned_val_accuracy,
        "chance_val_selection_accuracy": info.chance_val_accuracy,
        "n_train_clips": info.n_train_clips,
        "n_val_clips": info.n_val_clips,
        "history": MetadataValue.md(markdown_table(info.history, limit=50)),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return MaterializeResult(metadata={k: v for k, v in metadata.items() if v is not None})
