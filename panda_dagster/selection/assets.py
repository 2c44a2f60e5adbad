"""`selected_captions` (per shard) and `selection_model` (fine-tuned on human caption choices)."""

import base64
import time
from dataclasses import asdict

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from panda_dagster.common.checks import selected_checks
from panda_dagster.common.config import dagster_config_from
from panda_dagster.common.jobs import GPU_POOL, MODEL_BACKFILL, Group
from panda_dagster.common.metadata import histogram, markdown_table
from panda_dagster.common.resources import PandaResource
from panda_dagster.common.runner import ShardResult, run_shards, shard_asset
from panda_dagster.lib.selection.finetune import FinetuneConfig
from panda_dagster.lib.selection.shard import STAGE, SelectionConfig
from panda_dagster.selection.checks import SELECTED_CAPTIONS_CHECK_SPECS, evaluate_selection_checks
from panda_dagster.selection.resources import CaptionScorerResource

SelectedCaptionsConfig = dagster_config_from(SelectionConfig, name="SelectedCaptionsConfig")
SelectionModelConfig = dagster_config_from(FinetuneConfig, name="SelectionModelConfig", extra={
    "min_labels": (int, 20, "Fewer usable labels than this: keep using the base model"),
    "retrain_unchanged": (bool, False, "Train again even when the labels and settings equal the newest model's"),
})


def _png_markdown(png: bytes, title: str) -> MetadataValue:
    return MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})")


def _model_note(scorer, info, use_selection_model: bool) -> str:
    if info is None:
        why = "disabled by config" if not use_selection_model else "no selection model materialized yet"
        return f"base model {scorer.name} ({why})"
    return (f"selection_model {info.version}: validation selection accuracy {info.tuned_val_accuracy} "
            f"(base {info.base_val_accuracy}), {info.n_labels} labels")


def _selection_metadata(selection, scorer, model_note: str, models_label: str) -> dict[str, object]:
    from panda_dagster.lib.selection.report import sample_rows
    from panda_dagster.lib.selection.scorer import teacher_win_rates

    selected = selection.selected
    n_accepted = sum(s.accepted for s in selected)

    def mean(values) -> float:
        values = list(values)
        return round(sum(values) / len(values), 4) if values else 0.0

    return {
        "scorer": MetadataValue.text(scorer.name),
        "selection_model": MetadataValue.text(model_note),
        "models": MetadataValue.text(models_label),
        "n_clips": selection.n_clips,
        "n_selected": len(selected),
        "n_without_candidates": selection.n_without_candidates,
        "n_quarantined": len(selection.quarantine),
        "n_filtered": selection.n_filtered,
        "n_accepted": n_accepted,
        "keyframe_embeddings_reused": selection.n_embeddings_reused,
        "keyframe_embeddings_computed": selection.n_embeddings_computed,
        "accepted_rate": round(n_accepted / len(selected), 4) if selected else 0.0,
        "reject_reasons": MetadataValue.json(histogram(s.reject_reason for s in selected if not s.accepted)),
        "matching_score_mean": mean(s.matching_score for s in selected),
        "margin_mean": mean(s.margin_to_second for s in selected),
        "teacher_win_rates": MetadataValue.md(markdown_table(
            [{"teacher": t, "win_rate": r} for t, r in teacher_win_rates(selected).items()])),
        "sample": MetadataValue.md(markdown_table(sample_rows(selected))),
    }


def _select_one_shard(context, shard: str, config, panda: PandaResource, caption_scorer, scorer, info
                      ) -> ShardResult:
    from panda_dagster.lib.selection.report import score_histogram_png
    from panda_dagster.lib.selection.shard import keyframe_image_reader, select_shard, write_selection

    catalog, storage, settings = panda.catalog(), panda.storage(), config.to_lib()
    started = time.perf_counter()
    selection = select_shard(catalog, shard, scorer, settings, keyframe_image_reader(storage), caption_scorer.models_label)
    for q in selection.quarantine:
        context.log.warning(f"quarantine {q.uri}: {q.reason}")
    write_selection(catalog, selection)
    metadata = _selection_metadata(selection, scorer, _model_note(scorer, info, settings.use_selection_model),
                                   caption_scorer.models_label)
    elapsed = time.perf_counter() - started
    metadata["clips_per_s"] = round(selection.n_clips / elapsed, 2) if elapsed else 0.0
    png = score_histogram_png(selection.selected, settings.min_score, f"{shard}: {scorer.name}")
    if png:
        metadata["score_histogram"] = _png_markdown(png, "matching scores")
        metadata["score_histogram_in_storage"] = MetadataValue.text(
            storage.put_bytes(f"shards/{shard}/selection/score_histogram.png", png))
    return ShardResult(metadata, evaluate_selection_checks(catalog, shard, STAGE, selected_checks(context)))


@shard_asset(
    group=Group.SELECTION,
    backfill_policy=MODEL_BACKFILL,
    deps=["teacher_captions", "selection_model"],
    kinds={"pytorch", "duckdb"},
    pool=GPU_POOL,
    check_specs=SELECTED_CAPTIONS_CHECK_SPECS,
    description="For every clip of the shard, all teacher captions scored against the clip (open_clip: "
    "normalised mean of key-frame embeddings vs caption embedding, cosine) and the best one selected, with "
    "its margin to the runner-up; a quality bar and an optional per-video cap mark clips `accepted`, and "
    "clips the clip filters dropped are never accepted. Key-frame embeddings come from table "
    "`keyframe_embeddings` when the scorer's model and revision match (only missing ones are computed and "
    "recorded). Uses the newest materialized `selection_model` (fine-tuned on human choices) when there is "
    "one. Catalog tables `selected_captions` and `caption_scores`; clips whose key frames cannot be read go "
    "to `quarantine`.",
)
def selected_captions(context: AssetExecutionContext, config: SelectedCaptionsConfig, panda: PandaResource,
                      caption_scorer: CaptionScorerResource):
    # A backfill run may hand this step several shards: the scorer is loaded once for all of them.
    scorer, info = caption_scorer.scorer(panda.storage(), config.use_selection_model)
    context.log.info(f"scoring with {_model_note(scorer, info, config.use_selection_model)} on "
                     f"{caption_scorer.resolved_device}")
    if not scorer.image_model.trained:
        context.log.warning(f"scores come from random weights: {caption_scorer.models_label}")
    yield from run_shards(context, lambda shard: _select_one_shard(
        context, shard, config, panda, caption_scorer, scorer, info))


@asset(
    group_name=Group.SELECTION,
    kinds={"pytorch"},
    pool=GPU_POOL,
    description="The caption scorer fine-tuned on human choices (`panda label import` → catalog table "
    "`caption_preferences`): the chosen caption must outscore the clip's other candidates, plus a contrastive "
    "term; 'all bad' clips excluded; split by video into train/validation; selection accuracy (R@1 against "
    "the human choice) of the base and the fine-tuned model measured on validation. Stored as a versioned "
    "checkpoint under `models/selection/<version>/`; `selected_captions` uses the newest. Without labels, "
    "nothing is trained and the base model stays in use.",
)
def selection_model(context: AssetExecutionContext, config: SelectionModelConfig, panda: PandaResource,
                    caption_scorer: CaptionScorerResource) -> MaterializeResult:
    from panda_dagster.lib.selection.finetune import (
        finetune_scorer,
        labels_fingerprint,
        latest_selection_model,
        publish_selection_model,
    )
    from panda_dagster.lib.selection.inputs import load_preference_examples
    from panda_dagster.lib.selection.scorer import storage_frames_loader

    started = time.perf_counter()
    catalog, storage, finetune_config = panda.catalog(), panda.storage(), config.to_lib()
    examples, n_all_bad = load_preference_examples(catalog)
    n_videos = len({e.video_id for e in examples})
    metadata = {"n_labels": len(examples), "n_all_bad_excluded": n_all_bad, "n_labelled_videos": n_videos,
                "models": MetadataValue.text(caption_scorer.models_label)}
    if len(examples) < max(config.min_labels, 2) or n_videos < 2:
        reason = (f"{len(examples)} usable labels from {n_videos} videos (need {config.min_labels} from at least "
                  f"2 videos): no selection model trained; selected_captions uses the base model "
                  f"({caption_scorer.base_model_name}). Label clips with `panda label export` / `panda label import`.")
        context.log.warning(reason)
        return MaterializeResult(metadata={**metadata, "status": MetadataValue.text("base model (no labels)"),
                                           "note": MetadataValue.text(reason)})
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
    if caption_scorer.is_tiny:
        context.log.warning(f"selection model built on {caption_scorer.models_label}")
    metadata.update(_selection_model_metadata(storage, info, status))
    metadata["seconds"] = round(time.perf_counter() - started, 2)
    return MaterializeResult(metadata={k: v for k, v in metadata.items() if v is not None})


def _selection_model_metadata(storage, info, status: str) -> dict[str, object]:
    return {
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
    }
