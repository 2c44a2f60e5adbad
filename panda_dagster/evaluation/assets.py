"""Evaluation assets: `eval_metrics` per shard, the `retrieval_benchmark` and the `dataset_report`.

The work lives in `panda_dagster.lib.evaluation`; these assets read the catalog, call it, write the
results back (catalog rows, plots and the report in storage) and describe them in the UI.
"""


import base64
import time

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from panda_dagster.common.metadata import markdown_table
from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource

GROUP = "evaluation"


def _png_markdown(png: bytes, title: str) -> MetadataValue:
    return MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})")


class EvalMetricsConfig(Config):
    reference_metrics: bool = Field(
        default=True,
        description="Score every teacher and the selected captions against reference captions when the shard "
        "has them (pycocoevalcap BLEU/METEOR/ROUGE-L/CIDEr; needs Java)",
    )


@asset(
    partitions_def=video_shards,
    deps=["selected_captions"],
    group_name=GROUP,
    kinds={"python", "duckdb"},
    description="Proof that the shard's curated data is good: clip and caption statistics (vs Panda-70M's 8.5 s "
    "clips and 13.2-word captions), teacher win rates, matching scores, split consistency, quarantine by "
    "reason, and — for evaluation sets with reference captions — BLEU-1..4/METEOR/ROUGE-L/CIDEr of every "
    "teacher and of the selected captions. Catalog table `eval_metrics`; plots in storage "
    "`shards/<shard>/eval/`.",
)
def eval_metrics(context: AssetExecutionContext, config: EvalMetricsConfig, panda: PandaResource) -> MaterializeResult:
    from panda_dagster.lib.evaluation.catalog_io import load_shard_tables
    from panda_dagster.lib.evaluation.shard_eval import evaluate_shard

    shard = context.partition_key
    started = time.perf_counter()
    catalog, storage = panda.catalog(), panda.storage()
    tables = load_shard_tables(catalog, shard)
    if tables.clips.empty:
        context.log.warning(f"shard {shard} has no clips: only video and quarantine statistics")
    evaluation = evaluate_shard(tables, score_references=config.reference_metrics)
    for warning in evaluation.warnings:
        context.log.warning(warning)
    records = evaluation.records()
    catalog.replace_shard("eval_metrics", shard, records)

    prefix = f"shards/{shard}/eval/"
    storage.delete_prefix(prefix)  # a re-run replaces the plots, stale ones do not linger
    plot_uris = {name: storage.put_bytes(f"{prefix}{name}.png", png) for name, png in evaluation.plots.items()}

    v = evaluation.value
    tiny = bool(v("models.tiny"))
    metadata: dict[str, object] = {
        "models": MetadataValue.text(evaluation.metrics[0].detail["label"]),
        "n_metrics": len(records),
        "n_clips": int(v("clips.count") or 0),
        "clip_duration_mean_s": v("clips.duration_s.mean"),
        "caption_words_mean": v("captions.selected.length_words.mean"),
        "vocabulary_size": v("captions.selected.vocabulary_size"),
        "accepted_rate": v("captions.accepted.rate"),
        "matching_score_mean": v("matching_score.mean"),
        "split_max_running_distance_mean": v("split.max_running_distance.mean"),
        "n_quarantined": int(v("quarantine.count") or 0),
        "seconds": round(time.perf_counter() - started, 2),
        "metrics": MetadataValue.md(markdown_table(
            [{"metric": r.metric, "value": r.value} for r in records if r.value is not None], limit=60)),
    }
    metadata = {k: val for k, val in metadata.items() if val is not None}
    teachers = [{"teacher": m.name[len("teacher."):-len(".win_rate")], "win_rate": m.value}
                for m in evaluation.metrics if m.name.startswith("teacher.") and m.name.endswith(".win_rate")]
    if teachers:
        metadata["teacher_win_rates"] = MetadataValue.md(markdown_table(teachers))
    if evaluation.comparison is not None:
        table = evaluation.comparison.table.reset_index()
        metadata["references_best_source"] = MetadataValue.text(str(evaluation.comparison.best_overall))
        metadata["references"] = MetadataValue.md(markdown_table(table.to_dict(orient="records")))
    if tiny:
        context.log.warning(f"shard {shard}: metrics of tiny random-weight models")
    for name, png in evaluation.plots.items():
        metadata[f"plot_{name}"] = _png_markdown(png, name)
    metadata["plots_in_storage"] = MetadataValue.json(plot_uris)
    return MaterializeResult(metadata=metadata)


class RetrievalBenchmarkConfig(Config):
    profile: str = Field(default="", description="Models profile for the frozen open_clip features; empty = PANDA_MODELS")
    device: str = Field(default="auto", description="auto, cpu or cuda")
    fixed_teacher: str = Field(default="", description="Teacher used as the no-curation baseline; empty = the "
                               "captioning teacher covering most clips")
    accepted_only: bool = Field(default=True, description="Train on accepted (curated) clips only")
    embed_dim: int = 256
    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 1e-3
    margin: float = Field(default=0.1, description="Max-margin ranking loss margin")
    intra_video_rate: float = Field(default=0.5, description="Share of each batch drawn as same-video groups")
    test_fraction: float = Field(default=0.2, description="Share of videos held out")
    seed: int = 0


@asset(
    deps=["selected_captions"],
    group_name=GROUP,
    kinds={"pytorch", "duckdb"},
    pool="gpu",
    description="Downstream proof: a HowTo100M joint text-video embedding (gated embedding units, bidirectional "
    "max-margin ranking loss, intra-video negatives) trained on the curated clips of every materialized "
    "shard on frozen open_clip features, three ways — selected captions, narration, one fixed teacher — "
    "with the same clips, split and seed; text→video and video→text R@1/5/10 and median rank on held-out "
    "videos and on evaluation sets with references. Catalog table `retrieval_results` (shard '__all__').",
)
def retrieval_benchmark(context: AssetExecutionContext, config: RetrievalBenchmarkConfig,
                        panda: PandaResource) -> MaterializeResult:
    import pandas as pd

    from panda_dagster.lib.evaluation.benchmark import pil_loader, run_retrieval_benchmark
    from panda_dagster.lib.evaluation.catalog_io import catalog_shards, load_shard_tables, read_uri
    from panda_dagster.lib.evaluation.howto100m import JointEmbeddingConfig
    from panda_dagster.lib.evaluation.plots import retrieval_png
    from panda_dagster.lib.evaluation.records import ALL_SHARDS
    from panda_dagster.lib.models.openclip import load_open_clip
    from panda_dagster.lib.models.profiles import resolve_models_profile

    started = time.perf_counter()
    catalog, storage = panda.catalog(), panda.storage()
    shards = [s for s in catalog_shards(catalog, ("selected_captions",))]
    if not shards:
        context.log.warning("no shard has selected captions yet: nothing to benchmark")
    frames = [load_shard_tables(catalog, s) for s in shards]

    def concat(attr: str) -> pd.DataFrame:
        parts = [getattr(f, attr) for f in frames if not getattr(f, attr).empty]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    profile = resolve_models_profile(config.profile or None)
    model = load_open_clip(profile.name, device=config.device)
    if profile.is_tiny:
        context.log.warning(f"frozen features from {model.label}")
    joint = JointEmbeddingConfig(embed_dim=config.embed_dim, margin=config.margin,
                                 intra_video_rate=config.intra_video_rate, batch_size=config.batch_size,
                                 epochs=config.epochs, learning_rate=config.learning_rate,
                                 test_fraction=config.test_fraction, seed=config.seed)
    cache = None
    if not profile.is_tiny:  # tiny weights are cheap to recompute and may be rebuilt differently
        from panda_dagster.lib.evaluation.benchmark import FeatureCache
        from panda_dagster.lib.ids import slug

        cache = FeatureCache(panda.home_path / "cache" / "eval_features" / f"{slug(model.label, 80)}.npz")
    clips = concat("clips")
    if clips.empty:
        result = None
        records = []
    else:
        result = run_retrieval_benchmark(
            clips, concat("selected_captions"), concat("teacher_captions"), concat("subtitles"), concat("videos"),
            pil_loader(lambda uri: read_uri(storage, uri)), model.embed_images, model.embed_texts, joint,
            models_label=model.label, fixed_teacher=config.fixed_teacher or None,
            accepted_only=config.accepted_only, cache=cache,
            feature_models={"video": f"{model.label}: key-frame embeddings, max-pooled",
                            "text": f"{model.label}: text embeddings"},
        )
        records = result.records
        for note in result.notes:
            context.log.warning(note)
    catalog.replace_shard("retrieval_results", ALL_SHARDS, records)

    metadata: dict[str, object] = {
        "models": MetadataValue.text(model.label),
        "shards": MetadataValue.json(shards),
        "n_results": len(records),
        "seconds": round(time.perf_counter() - started, 2),
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
    return MaterializeResult(metadata=metadata)


class DatasetReportConfig(Config):
    samples_per_shard: int = Field(default=4, description="Sample clips shown per shard")


@asset(
    deps=["eval_metrics", "retrieval_benchmark"],
    group_name=GROUP,
    kinds={"html"},
    description="One self-contained HTML page with every evaluation across shards (tables, plots, sample clips "
    "with key frames and their candidate and selected captions, the retrieval benchmark), written to "
    "PANDA_HOME/reports/dataset_report.html and to storage `reports/`. Same page as `panda report`.",
)
def dataset_report(context: AssetExecutionContext, config: DatasetReportConfig, panda: PandaResource) -> MaterializeResult:
    from panda_dagster.lib.evaluation.catalog_io import catalog_shards
    from panda_dagster.lib.evaluation.report import REPORT_NAME, write_report

    catalog, storage = panda.catalog(), panda.storage()
    shards = catalog_shards(catalog)
    path = write_report(catalog, storage, n_samples=config.samples_per_shard)
    uri = storage.put_file(f"reports/{REPORT_NAME}", path)
    html = path.read_text(encoding="utf-8")
    from panda_dagster.lib.models.profiles import TINY_LABEL

    return MaterializeResult(metadata={
        "path": MetadataValue.path(str(path)),
        "storage_uri": MetadataValue.text(uri),
        "shards": MetadataValue.json(shards),
        "size_kb": round(len(html.encode()) / 1024, 1),
        "tiny_models": TINY_LABEL in html,
    })
