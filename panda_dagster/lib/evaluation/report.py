"""The dataset report: one self-contained HTML page with every evaluation across shards.

Images (plots, key-frame thumbnails) are embedded as base64 data URIs, so the page can be mailed or
opened from any folder. Numbers come from the catalog (`eval_metrics`, `retrieval_results`); a shard
whose `eval_metrics` was never materialized is evaluated on the fly and marked as such.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.evaluation import plots
from panda_dagster.lib.evaluation.captions import METRICS
from panda_dagster.lib.evaluation.catalog_io import catalog_shards, load_shard_tables, read_table
from panda_dagster.lib.evaluation.records import ALL_SHARDS
from panda_dagster.lib.evaluation.report_config import REPORT_DEFAULTS
from panda_dagster.lib.evaluation.stats import PANDA70M_MEAN_CAPTION_WORDS, PANDA70M_MEAN_CLIP_S
from panda_dagster.lib.models.profiles import TINY_LABEL
from panda_dagster.lib.storage import read_artifact

log = logging.getLogger(__name__)

REPORT_NAME = "dataset_report.html"
TEMPLATE = "report.html"


def default_report_path(home: Path | str) -> Path:
    return Path(home) / "reports" / REPORT_NAME


def _b64_png(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _thumbnail(data: bytes, width: int = 240) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        if img.width > width:
            img = img.resize((width, max(1, round(img.height * width / img.width))))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


@dataclass
class Sample:
    clip_id: str
    video_id: str
    span: str
    why: str  # why this clip was picked (best / typical / worst / rejected)
    thumbnails: list[str]
    selected: str | None
    selected_teacher: str | None
    matching_score: float | None
    accepted: bool | None
    reject_reason: str | None
    narration: str | None
    candidates: list[dict]  # teacher, caption, score, rank, model_id


@dataclass
class ShardSection:
    shard: str
    metrics: dict[str, tuple[float | None, object]]
    computed_now: bool
    tiny: bool  # some model that fed the shard had random weights
    plots: dict[str, str] = field(default_factory=dict)  # name -> data URI
    reference_table: list[dict] = field(default_factory=list)
    best_source: str | None = None
    quarantine: list[dict] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)  # per filter reason: count and example clips
    warnings: list[str] = field(default_factory=list)
    models_label: str = ""  # per model trained or random (eval_metrics' `models` label)
    roles: dict[str, list[dict]] = field(default_factory=dict)  # profile -> [{role, model, trained}]
    random_roles: list[str] = field(default_factory=list)

    def v(self, name: str):
        return self.metrics.get(name, (None, None))[0]

    def d(self, name: str):
        return self.metrics.get(name, (None, None))[1]


def _metric_map(rows: pd.DataFrame) -> dict[str, tuple[float | None, object]]:
    out = {}
    for metric, value, detail in zip(rows["metric"], rows["value"], rows["detail_json"]):
        parsed = json.loads(detail) if isinstance(detail, str) and detail else None
        value = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
        out[metric] = (value, parsed)
    return out


def _pick_samples(tables, n: int) -> list[tuple[str, str]]:
    """(clip_id, why): best, typical and worst accepted by matching score, plus a rejected one."""
    sel = tables.selected_captions
    if sel.empty:
        ids = tables.clips["clip_id"].tolist()[:n] if not tables.clips.empty else []
        return [(c, "clip (no captions selected yet)") for c in ids]
    sel = sel.sort_values(["matching_score", "clip_id"], ascending=[False, True])
    accepted = sel[sel["accepted"].fillna(False).astype(bool)] if "accepted" in sel else sel
    rejected = sel.drop(accepted.index)
    picks: list[tuple[str, str]] = []
    if len(accepted):
        n_acc = max(1, n - (1 if len(rejected) else 0))
        positions = sorted({round(i * (len(accepted) - 1) / max(1, n_acc - 1)) for i in range(n_acc)})
        for rank, pos in enumerate(positions):
            why = ("highest matching score" if pos == 0 else
                   "lowest accepted score" if pos == len(accepted) - 1 else "typical accepted clip")
            picks.append((accepted["clip_id"].iloc[pos], why))
    if len(rejected) and len(picks) < n:
        picks.append((rejected["clip_id"].iloc[0], "rejected (best of the rejected)"))
    return picks[:n]


def _samples(tables, storage, n: int, max_frames: int = 3) -> list[Sample]:
    if tables.clips.empty:
        return []
    clips = tables.clips.set_index("clip_id")
    sel = tables.selected_captions.set_index("clip_id") if not tables.selected_captions.empty else pd.DataFrame()
    tc, cs = tables.teacher_captions, tables.caption_scores
    out = []
    for clip_id, why in _pick_samples(tables, n):
        if clip_id not in clips.index:
            continue
        clip = clips.loc[clip_id]
        thumbs = []
        for uri in list(clip.get("keyframe_uris") if clip.get("keyframe_uris") is not None else [])[:max_frames]:
            try:
                thumbs.append(_thumbnail(read_artifact(uri, storage)))
            except Exception as exc:  # the report still shows the clip's text
                log.warning("report: key frame %s unreadable: %s", uri, exc)
        candidates = []
        if not tc.empty:
            own = tc[tc["clip_id"] == clip_id]
            scores = cs[cs["clip_id"] == clip_id].set_index("teacher") if not cs.empty else pd.DataFrame()
            for r in own.itertuples(index=False):
                score = scores.loc[r.teacher] if not scores.empty and r.teacher in scores.index else None
                if isinstance(score, pd.DataFrame):
                    score = score.iloc[0]
                candidates.append({"teacher": r.teacher, "caption": r.caption,
                                   "model_id": getattr(r, "model_id", ""),
                                   "score": None if score is None else float(score["score"]),
                                   "rank": None if score is None else int(score["rank"])})
            candidates.sort(key=lambda c: (c["rank"] is None, c["rank"] or 0, c["teacher"]))
        s = sel.loc[clip_id] if not sel.empty and clip_id in sel.index else None
        narration = clip.get("narration")
        out.append(Sample(
            clip_id=clip_id, video_id=str(clip["video_id"]),
            span=f"{float(clip['start_s']):.2f}–{float(clip['end_s']):.2f} s ({float(clip['end_s']) - float(clip['start_s']):.1f} s)",
            why=why, thumbnails=thumbs,
            selected=None if s is None else str(s["caption"]),
            selected_teacher=None if s is None else str(s["teacher"]),
            matching_score=None if s is None else float(s["matching_score"]),
            accepted=None if s is None else bool(s["accepted"]),
            reject_reason=None if s is None else (s.get("reject_reason") or None),
            narration=narration if isinstance(narration, str) and narration.strip() else None,
            candidates=candidates,
        ))
    return out


def _first_thumbnail(clip, storage) -> str | None:
    uris = list(clip.get("keyframe_uris") if clip.get("keyframe_uris") is not None else [])
    if not uris:
        return None
    try:
        return _thumbnail(read_artifact(uris[0], storage))
    except Exception as exc:  # noqa: BLE001  the report still lists the clip
        log.warning("report: key frame %s unreadable: %s", uris[0], exc)
        return None


def _dropped(tables, storage, per_reason: int = REPORT_DEFAULTS.dropped_examples_per_reason) -> list[dict]:
    """Per reason the clip filters dropped clips for (most frequent first): the count and a few clips."""
    from panda_dagster.lib.evaluation.stats import filter_reasons

    decisions = tables.clip_filters
    if decisions.empty or tables.clips.empty:
        return []
    clips = tables.clips.set_index("clip_id")
    dropped = decisions[~decisions["keep"].fillna(True).astype(bool)]
    out = []
    for reason, count in filter_reasons(decisions).most_common():
        examples = []
        for row in dropped.itertuples(index=False):
            reasons = [str(r) for r in row.reasons] if row.reasons is not None else []
            if reason not in reasons or row.clip_id not in clips.index:
                continue
            clip = clips.loc[row.clip_id]
            examples.append({"clip_id": row.clip_id, "thumbnail": _first_thumbnail(clip, storage),
                             "span": f"{float(clip['start_s']):.1f}–{float(clip['end_s']):.1f} s",
                             "other_reasons": [r for r in reasons if r != reason]})
            if len(examples) >= per_reason:
                break
        out.append({"reason": reason, "count": count, "examples": examples})
    return out


def shard_section(catalog: Catalog, storage, shard: str, n_samples: int = REPORT_DEFAULTS.samples_per_shard,
                  dropped_per_reason: int = REPORT_DEFAULTS.dropped_examples_per_reason) -> ShardSection:
    from panda_dagster.lib.evaluation.shard_eval import evaluate_shard

    tables = load_shard_tables(catalog, shard)
    rows = read_table(catalog, "eval_metrics", shard)
    computed_now = rows.empty
    warnings: list[str] = []
    if computed_now:
        evaluation = evaluate_shard(tables)
        rows = evaluation.frame()
        warnings += evaluation.warnings
        warnings.append("eval_metrics is not materialized for this shard: computed for this report")
    metrics = _metric_map(rows)
    tiny_value, models = metrics.get("models.tiny", (0.0, None))
    models = models or {}
    section = ShardSection(shard, metrics, computed_now, bool(tiny_value), warnings=warnings,
                           models_label=str(models.get("label", "")), roles=dict(models.get("roles") or {}),
                           random_roles=list(models.get("random_roles") or []))
    section.plots = {k: _b64_png(v) for k, v in plots.shard_plots(rows, shard).items()}
    _, best = metrics.get("references.best.CIDEr", (None, None))
    if best:
        section.best_source = best.get("source")
        section.reference_table = [
            {"source": r["source"], **{m: 100.0 * float(r[m]) for m in METRICS}, "n_items": int(r["n_items"]),
             "coverage": 100.0 * float(r["coverage"])} for r in best.get("table", [])]
    _, q = metrics.get("quarantine.count", (None, None))
    section.quarantine = (q or {}).get("by_reason", [])
    section.samples = _samples(tables, storage, n_samples)
    section.dropped = _dropped(tables, storage, dropped_per_reason)
    return section


def _overview_row(s: ShardSection) -> dict:
    wins = {k[len("teacher."):-len(".win_rate")]: v for k, (v, _) in s.metrics.items()
            if k.startswith("teacher.") and k.endswith(".win_rate") and v is not None}
    top = max(wins.items(), key=lambda kv: kv[1]) if wins else None
    return {
        "shard": s.shard,
        "videos": _fmt(s.v("videos.count"), 0), "clips": _fmt(s.v("clips.count"), 0),
        "hours": _fmt(s.v("clips.total_duration_h"), 3),
        "mean_clip_s": _fmt(s.v("clips.duration_s.mean"), 1),
        "caption_words": _fmt(s.v("captions.selected.length_words.mean"), 1),
        "vocabulary": _fmt(s.v("captions.selected.vocabulary_size"), 0),
        "accepted": _fmt(None if s.v("captions.accepted.rate") is None else 100 * s.v("captions.accepted.rate"), 1),
        "matching": _fmt(s.v("matching_score.mean"), 3),
        "split": _fmt(s.v("split.max_running_distance.mean"), 3),
        "top_teacher": f"{top[0]} ({100 * top[1]:.0f}%)" if top else "—",
        "quarantined": _fmt(s.v("quarantine.count"), 0),
        "best_vs_refs": s.best_source or "—",
        "tiny": s.tiny,
        "random_roles": s.random_roles,
    }


def retrieval_section(catalog: Catalog) -> dict | None:
    rows = read_table(catalog, "retrieval_results", ALL_SHARDS)
    if rows.empty:
        return None
    cfg = json.loads(rows["config_json"].iloc[0]) if rows["config_json"].iloc[0] else {}
    fmt_cols = ["r1", "r5", "r10", "median_rank", "mean_rank"]
    own = rows[(rows["eval_set"] == "heldout") & (rows["train_text"] == rows["eval_text"])]
    main = []
    for train, group in own.groupby("train_text", sort=False):
        g = group.set_index("direction")
        entry = {"train_text": train}
        for d in ("t2v", "v2t"):
            for c in fmt_cols:
                entry[f"{d}_{c}"] = float(g.loc[d, c]) if d in g.index else None
        entry["n_queries"] = int(g["n_queries"].iloc[0])
        main.append(entry)
    heldout = rows[(rows["eval_set"] == "heldout") & (rows["direction"] == "t2v")]
    cross = heldout.pivot_table(index="train_text", columns="eval_text", values="r1", aggfunc="first")
    refs = rows[rows["eval_set"] != "heldout"].sort_values(["eval_set", "train_text", "direction"])
    plot = plots.retrieval_png(rows, "Text→video retrieval on held-out clips (own training text)")
    ref_plots = [
        _b64_png(p) for s in sorted(set(refs["eval_set"]))
        if (p := plots.retrieval_png(rows, f"Text→video retrieval on {s}", eval_set=s)) is not None
    ]
    return {
        "main": main,
        "cross_columns": list(cross.columns),
        "cross": [{"train_text": i, "values": [None if pd.isna(v) else float(v) for v in r]} for i, r in cross.iterrows()],
        "references": refs.to_dict(orient="records"),
        "plot": _b64_png(plot) if plot else None,
        "ref_plots": ref_plots,
        "config": cfg,
        "models_label": sorted(set(rows["models_label"])),
        # random video or text features (the feature labels say TINY_LABEL for random weights)
        "tiny": any(TINY_LABEL in str(v) for v in [*rows["models_label"], *(cfg.get("feature_models") or {}).values()]),
        "computed_at": str(rows["computed_at"].max()),
        "chance_r1": 100.0 / max(1, int(own["n_candidates"].iloc[0])) if len(own) else None,
    }


def models_overview(sections: list[ShardSection]) -> list[dict]:
    """Per models profile the shards used: which model filled each role and whether its weights were trained
    or random (`lib.models.roles`, as recorded in each shard's eval_metrics), for the report's banner."""
    profiles: dict[str, dict] = {}
    for s in sections:
        for profile, roles in s.roles.items():
            entry = profiles.setdefault(profile, {"profile": profile, "shards": [], "roles": roles})
            entry["shards"].append(s.shard)
    for entry in profiles.values():
        entry["trained"] = [r for r in entry["roles"] if r["trained"]]
        entry["random"] = [r for r in entry["roles"] if not r["trained"]]
    return [profiles[p] for p in sorted(profiles)]


def build_report(catalog: Catalog, storage, shards: list[str] | None = None,
                 n_samples: int = REPORT_DEFAULTS.samples_per_shard, current_profile_label: str | None = None,
                 dropped_per_reason: int = REPORT_DEFAULTS.dropped_examples_per_reason) -> str:
    import jinja2

    shards = shards if shards is not None else catalog_shards(catalog)
    sections = [shard_section(catalog, storage, s, n_samples, dropped_per_reason) for s in shards]
    retrieval = retrieval_section(catalog)
    tiny = any(s.tiny for s in sections) or bool(retrieval and retrieval["tiny"])
    models = models_overview(sections)
    env = jinja2.Environment(loader=jinja2.PackageLoader("panda_dagster.lib.evaluation", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)
    env.filters["fmt"] = _fmt
    return env.get_template(TEMPLATE).render(
        generated_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        home=str(catalog.home), sections=sections, overview=[_overview_row(s) for s in sections],
        retrieval=retrieval, tiny=tiny, tiny_label=TINY_LABEL, current_profile=current_profile_label, models=models,
        metrics=METRICS, panda_clip_s=PANDA70M_MEAN_CLIP_S, panda_caption_words=PANDA70M_MEAN_CAPTION_WORDS,
    )


def write_report(catalog: Catalog, storage, out_path: Path | str | None = None, **kwargs) -> Path:
    """Render the report and write it atomically; returns its path (default PANDA_HOME/reports/…)."""
    html = build_report(catalog, storage, **kwargs)
    path = Path(out_path) if out_path else default_report_path(catalog.home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
