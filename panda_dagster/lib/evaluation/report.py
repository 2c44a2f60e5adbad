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
from panda_dagster.lib.evaluation.catalog_io import catalog_shards, load_shard_tables, read_table, read_uri
from panda_dagster.lib.evaluation.records import ALL_SHARDS
from panda_dagster.lib.evaluation.stats import PANDA70M_MEAN_CAPTION_WORDS, PANDA70M_MEAN_CLIP_S
from panda_dagster.lib.models.profiles import TINY_LABEL

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
    tiny: bool
    plots: dict[str, str] = field(default_factory=dict)  # name -> data URI
    reference_table: list[dict] = field(default_factory=list)
    best_source: str | None = None
    quarantine: list[dict] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

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
                thumbs.append(_thumbnail(read_uri(storage, uri)))
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


def shard_section(catalog: Catalog, storage, shard: str, n_samples: int = 4) -> ShardSection:
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
    tiny = bool(metrics.get("models.tiny", (0.0, None))[0])
    section = ShardSection(shard, metrics, computed_now, tiny, warnings=warnings)
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
        "tiny": bool((rows["models_label"] == TINY_LABEL).any()),
        "computed_at": str(rows["computed_at"].max()),
        "chance_r1": 100.0 / max(1, int(own["n_candidates"].iloc[0])) if len(own) else None,
    }


def build_report(catalog: Catalog, storage, shards: list[str] | None = None, n_samples: int = 4,
                 current_profile_label: str | None = None) -> str:
    import jinja2

    shards = shards if shards is not None else catalog_shards(catalog)
    sections = [shard_section(catalog, storage, s, n_samples) for s in shards]
    retrieval = retrieval_section(catalog)
    tiny = any(s.tiny for s in sections) or bool(retrieval and retrieval["tiny"])
    env = jinja2.Environment(loader=jinja2.PackageLoader("panda_dagster.lib.evaluation", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)
    env.filters["fmt"] = _fmt
    return env.get_template(TEMPLATE).render(
        generated_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        home=str(catalog.home), sections=sections, overview=[_overview_row(s) for s in sections],
        retrieval=retrieval, tiny=tiny, tiny_label=TINY_LABEL, current_profile=current_profile_label,
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
