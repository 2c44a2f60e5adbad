"""Evaluation assets: `eval_metrics` per shard, the `retrieval_benchmark` and the `dataset_report`.

The work lives in `panda_dagster.lib.evaluation`; these assets read the catalog, call it, write the
results back (catalog rows, plots and the report in storage) and describe them in the UI.
"""

import base64
import time

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from panda_dagster.common.checks import selected_checks
from panda_dagster.common.config import dagster_config_from
from panda_dagster.common.jobs import GPU_POOL, Group
from panda_dagster.common.metadata import markdown_table
from panda_dagster.common.resources import PandaResource
from panda_dagster.common.runner import ShardResult, run_shards, shard_asset
from panda_dagster.evaluation.checks import EVAL_METRICS_CHECK_SPECS, EVAL_METRICS_WARNING_CHECKS
from panda_dagster.evaluation.resources import EvaluationModelsResource
from panda_dagster.lib.evaluation.benchmark import BenchmarkConfig
from panda_dagster.lib.evaluation.report_config import ReportConfig
from panda_dagster.lib.evaluation.shard_eval import EvalConfig

EvalMetricsConfig = dagster_config_from(EvalConfig, name="EvalMetricsConfig")
RetrievalBenchmarkConfig = dagster_config_from(BenchmarkConfig, name="RetrievalBenchmarkConfig")
DatasetReportConfig = dagster_config_from(ReportConfig, name="DatasetReportConfig")


def _png_markdown(png: bytes, title: str) -> MetadataValue:
    return MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})")


def _eval_metadata(evaluation, records, plot_uris: dict[str, str]) -> dict[str, object]:
    v = evaluation.value
    metadata: dict[str, object] = {
        "models": MetadataValue.text(evaluation.metrics[0].detail["label"]),
        "n_metrics": len(records),
        "n_clips": int(v("clips.count") or 0),
        "clip_duration_mean_s": v("clips.duration_s.mean"),
        "caption_words_mean": v("captions.selected.length_words.mean"),
        "vocabulary_size": v("captions.selected.vocabulary_size"),
        "accepted_rate": v("captions.accepted.rate"),
        "kept_share": v("filters.kept.share"),
        "near_duplicate_share": v("captions.selected.near_duplicates.share"),
        "matching_score_mean": v("matching_score.mean"),
        "split_max_running_distance_mean": v("split.max_running_distance.mean"),
        "n_quarantined": int(v("quarantine.count") or 0),
        "metrics": MetadataValue.md(markdown_table(
            [{"metric": r.metric, "value": r.value} for r in records if r.value is not None], limit=60)),
    }
    metadata = {k: val for k, val in metadata.items() if val is not None}
    teachers = [{"teacher": m.name[len("teacher."):-len(".win_rate")], "win_rate": m.value}
                for m in evaluation.metrics if m.name.startswith("teacher.") and m.name.endswith(".win_rate")]
    if teachers:
        metadata["teacher_win_rates"] = MetadataValue.md(markdown_table(teachers))
    if evaluation.comparison is not None:
        metadata["references_best_source"] = MetadataValue.text(str(evaluation.comparison.best_overall))
        metadata["references"] = MetadataValue.md(markdown_table(
            evaluation.comparison.table.reset_index().to_dict(orient="records")))
    if evaluation.notes:
        metadata["notes"] = MetadataValue.md("\n".join(f"- {n}" for n in evaluation.notes))
    for name, png in evaluation.plots.items():
        metadata[f"plot_{name}"] = _png_markdown(png, name)
    metadata["plots_in_storage"] = MetadataValue.json(plot_uris)
    return metadata


def _evaluate_one_shard(context, panda: PandaResource, shard: str, config: EvalConfig, sentences,
                        no_sentences_reason: str | None) -> ShardResult:
    from panda_dagster.lib.evaluation.catalog_io import load_shard_tables
    from panda_dagster.lib.evaluation.checks import evaluate_eval_checks
    from panda_dagster.lib.evaluation.shard_eval import evaluate_shard

    catalog, storage = panda.catalog(), panda.storage()
    tables = load_shard_tables(catalog, shard)
    if tables.clips.empty:
        context.log.warning(f"shard {shard} has no clips: only video and quarantine statistics")
    evaluation = evaluate_shard(tables, config, sentences, no_sentences_reason or "")
    for warning in evaluation.warnings:
        context.log.warning(warning)
    if bool(evaluation.value("models.tiny")):
        context.log.warning(f"shard {shard}: some metrics come from random-weight models: "
                            f"{evaluation.metrics[0].detail['label']}")
    records = evaluation.records()
    catalog.replace_shard("eval_metrics", shard, records)
    prefix = f"shards/{shard}/eval/"
    storage.delete_prefix(prefix)  # a re-run replaces the plots, stale ones do not linger
    plot_uris = {name: storage.put_bytes(f"{prefix}{name}.png", png) for name, png in evaluation.plots.items()}
    # On what the catalog holds now: the stored metric rows against a fresh count of the shard's clips.
    checks = evaluate_eval_checks(catalog.rows("eval_metrics", shard), len(catalog.read_shard("clips", shard)),
                                  selected_checks(context))
    return ShardResult(_eval_metadata(evaluation, records, plot_uris), checks)


@shard_asset(
    group=Group.EVALUATION,
    deps=["selected_captions"],
    kinds={"python", "duckdb"},
    check_specs=EVAL_METRICS_CHECK_SPECS,
    description="Proof that the shard's curated data is good: clip and caption statistics (vs Panda-70M's 8.5 s "
    "clips and 13.2-word captions), teacher win rates, matching scores, split consistency, quarantine by "
    "reason, what the clip filters kept (share, drops per reason), exact and near-duplicate selected captions "
    "(near-duplicates with the profile's sentence embedder, where it has one), and — for evaluation sets with "
    "reference captions — BLEU-1..4/METEOR/ROUGE-L/CIDEr of every teacher and of the selected captions. "
    "Catalog table `eval_metrics`; plots in storage `shards/<shard>/eval/`.",
)
def eval_metrics(context: AssetExecutionContext, config: EvalMetricsConfig, panda: PandaResource,
                 evaluation_models: EvaluationModelsResource):
    settings = config.to_lib()

    def one_shard(shard: str) -> ShardResult:
        # Loaded by the first shard (its time is stage work), from the model cache for the others.
        sentences, no_sentences_reason = evaluation_models.sentence_embedder()
        if sentences is None:
            context.log.info(f"near-duplicate captions not measured: {no_sentences_reason}")
        return _evaluate_one_shard(context, panda, shard, settings, sentences, no_sentences_reason)

    yield from run_shards(context, one_shard, warning_checks=EVAL_METRICS_WARNING_CHECKS)


def _benchmark_metadata(result, storage, image_model, text_model, shards, reuse: dict) -> dict[str, object]:
    from panda_dagster.lib.evaluation.plots import retrieval_png

    metadata: dict[str, object] = {
        "models": MetadataValue.text(image_model.label),
        "text_model": MetadataValue.text(text_model.label),
        "shards": MetadataValue.json(shards),
        "n_results": len(result.records) if result is not None else 0,
        **reuse,
    }
    table = result.table() if result is not None and result.comparison is not None else None
    if table is not None and not table.empty:  # empty when every text source had too few clips to train
        own = table[(table.eval_set == "heldout") & (table.train_text == table.eval_text)]
        metadata["heldout"] = MetadataValue.md(markdown_table(
            own[["train_text", "direction", "r1", "r5", "r10", "median_rank", "n_queries"]].to_dict(orient="records")))
        refs = table[table.eval_set != "heldout"]
        if not refs.empty:
            metadata["references"] = MetadataValue.md(markdown_table(
                refs[["eval_set", "train_text", "direction", "r1", "r5", "r10", "median_rank"]].to_dict(orient="records")))
        metadata["n_train_clips"] = result.comparison.n_train_clips
        metadata["n_test_clips"] = result.comparison.n_test_clips
        metadata["fixed_teacher"] = MetadataValue.text(str(result.fixed_teacher))
        png = retrieval_png(table, "Text→video retrieval on held-out clips")
        if png:
            metadata["plot_retrieval"] = _png_markdown(png, "retrieval")
            metadata["plot_in_storage"] = MetadataValue.text(storage.put_bytes("reports/retrieval_benchmark.png", png))
    if result is not None and result.notes:
        metadata["notes"] = MetadataValue.md("\n".join(f"- {n}" for n in result.notes))
    return metadata


@asset(
    deps=["selected_captions"],
    group_name=Group.EVALUATION,
    kinds={"pytorch", "duckdb"},
    pool=GPU_POOL,
    description="Downstream proof: a HowTo100M joint text-video embedding (gated embedding units, bidirectional "
    "max-margin ranking loss, intra-video negatives) trained on the curated clips of every materialized "
    "shard on frozen features (video: the profile's frame embedder — EfficientNet-Lite0 in `offline`, open_clip "
    "elsewhere — key-frame embeddings max-pooled over time, reused from table `keyframe_embeddings`; "
    "text: the profile's sentence embedder, else open_clip's text tower), three ways — selected captions, "
    "narration, one fixed teacher — with the same clips, split and seed; text→video and video→text R@1/5/10 "
    "and median rank on held-out videos and on evaluation sets with references. Catalog table "
    "`retrieval_results` (shard '__all__').",
)
def retrieval_benchmark(context: AssetExecutionContext, config: RetrievalBenchmarkConfig, panda: PandaResource,
                        evaluation_models: EvaluationModelsResource) -> MaterializeResult:
    from panda_dagster.lib.evaluation.benchmark import FeatureCache, benchmark_catalog
    from panda_dagster.lib.evaluation.catalog_io import catalog_shards
    from panda_dagster.lib.evaluation.records import ALL_SHARDS
    from panda_dagster.lib.ids import slug

    started = time.perf_counter()
    catalog, storage = panda.catalog(), panda.storage()
    shards = catalog_shards(catalog, ("selected_captions",))
    if not shards:
        context.log.warning("no shard has selected captions yet: nothing to benchmark")
    # Video side: the profile's frame embedder (EfficientNet-Lite0 in `offline`), as HowTo100M used 2-D CNN features.
    image_model, text_model = evaluation_models.video_model(), evaluation_models.text_embedder()
    for side, model in (("video", image_model), ("text", text_model)):
        if not model.trained:
            context.log.warning(f"frozen {side} features from random weights: {model.label}")
    # Text features are cached per text model; random weights are cheap to recompute and may be rebuilt.
    cache = None if not text_model.trained else FeatureCache(
        panda.home_path / "cache" / "eval_features" / f"{slug(text_model.label, 80)}.npz")
    result, reuse = benchmark_catalog(catalog, storage, shards, image_model, text_model, config.to_lib(), cache,
                                      log=context.log.warning)
    catalog.replace_shard("retrieval_results", ALL_SHARDS, result.records if result is not None else [])
    metadata = _benchmark_metadata(result, storage, image_model, text_model, shards, reuse)
    metadata["seconds"] = round(time.perf_counter() - started, 2)
    return MaterializeResult(metadata=metadata)


@asset(
    deps=["eval_metrics", "retrieval_benchmark"],
    group_name=Group.EVALUATION,
    kinds={"html"},
    description="One self-contained HTML page with every evaluation across shards (tables, plots, sample clips "
    "with key frames and their candidate and selected captions, examples of the clips the filters dropped, "
    "the retrieval benchmark), written to PANDA_HOME/reports/dataset_report.html and to storage `reports/`. "
    "Same page as `panda report`.",
)
def dataset_report(context: AssetExecutionContext, config: DatasetReportConfig, panda: PandaResource) -> MaterializeResult:
    from panda_dagster.lib.evaluation.catalog_io import catalog_shards
    from panda_dagster.lib.evaluation.report import REPORT_NAME, write_report
    from panda_dagster.lib.models.profiles import TINY_LABEL

    catalog, storage, settings = panda.catalog(), panda.storage(), config.to_lib()
    path = write_report(catalog, storage, n_samples=settings.samples_per_shard,
                        dropped_per_reason=settings.dropped_examples_per_reason)
    html = path.read_text(encoding="utf-8")
    return MaterializeResult(metadata={
        "path": MetadataValue.path(str(path)),
        "storage_uri": MetadataValue.text(storage.put_file(f"reports/{REPORT_NAME}", path)),
        "shards": MetadataValue.json(catalog_shards(catalog)),
        "size_kb": round(len(html.encode()) / 1024, 1),
        "tiny_models": TINY_LABEL in html,
        "random_weight_models": "RANDOM weights" in html or TINY_LABEL in html,
    })
