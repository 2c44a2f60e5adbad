"""The downstream benchmark: a HowTo100M joint embedding trained on the curated clips, three ways.

Frozen features: a clip's video feature is the max over time of the frame embedder's embeddings of its
key frames (EfficientNet-Lite0 in `offline`, open_clip elsewhere; table `keyframe_embeddings`, shared with
`clips` and `selected_captions`: only clips without a row of that model and revision are embedded, and
recorded); a text feature is the sentence embedding of
the caption (the `offline` profile's MiniLM, else open_clip's text tower). The same clips, split and seed
are trained with three training texts: the selected captions, the narration (subtitle/ASR text over the
clip's span) and one fixed teacher. Shards whose videos carry reference captions are evaluation sets:
they are kept out of training and evaluated on their references.

The encoders come in as callables (`embed_images(list[PIL.Image]) -> array`, `embed_texts(list[str]) ->
array`) so tests can pass synthetic ones; `benchmark_catalog` passes the models' and the catalog's.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from panda_dagster.lib.evaluation.captions import clip_references
from panda_dagster.lib.evaluation.howto100m import (
    ComparisonResult,
    JointEmbeddingConfig,
    ReferenceEvalSet,
    TextSource,
    compare_text_sources,
)
from panda_dagster.lib.evaluation.records import ALL_SHARDS, RetrievalResultRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchmarkConfig:
    """What `retrieval_benchmark` trains on, and how."""

    fixed_teacher: str = field(default="", metadata={"help": (
        "Teacher used as the no-curation baseline; empty = the captioning teacher covering most clips")})
    accepted_only: bool = field(default=True, metadata={"help": "Train on accepted (curated) clips only"})
    joint: JointEmbeddingConfig = field(default_factory=JointEmbeddingConfig, metadata={
        "help": "The joint embedding and its training"})


EmbedImages = Callable[[Sequence[object]], np.ndarray]
EmbedTexts = Callable[[Sequence[str]], np.ndarray]
LoadImage = Callable[[str], object]


def clip_narration(clips: pd.DataFrame, subtitles: pd.DataFrame) -> list[str]:
    """Narration per clip: its own narration text (narration clips), else the subtitle/ASR cues that
    overlap its span, in time order (the HowTo100M pairing of a clip with what is said during it)."""
    out = []
    cues_by_video: dict[str, pd.DataFrame] = {}
    if not subtitles.empty:
        for vid, group in subtitles.groupby("video_id"):
            cues_by_video[vid] = group.sort_values("start_s")
    for row in clips.itertuples(index=False):
        own = getattr(row, "narration", None)
        if isinstance(own, str) and own.strip():
            out.append(own.strip())
            continue
        cues = cues_by_video.get(row.video_id)
        if cues is None:
            out.append("")
            continue
        hit = cues[(cues["end_s"] > row.start_s) & (cues["start_s"] < row.end_s)]
        seen: list[str] = []
        for text in hit["text"]:
            text = " ".join(str(text).split())
            if text and text not in seen:  # ASR and file cues may repeat each other
                seen.append(text)
        out.append(" ".join(seen))
    return out


def choose_fixed_teacher(teacher_captions: pd.DataFrame, clip_ids: Sequence[str], preferred: str | None = None) -> str | None:
    """The teacher used as the 'no curation' baseline: `preferred` if given, else the captioning
    teacher (not the narration pseudo-teacher) that covers most of the clips."""
    if teacher_captions.empty:
        return None
    tc = teacher_captions[teacher_captions["clip_id"].isin(set(clip_ids))]
    if "kind" in tc:
        tc = tc[tc["kind"] != "narration"]
    if preferred is not None:
        if preferred not in set(tc["teacher"]):
            raise ValueError(f"teacher {preferred!r} has no caption for these clips; have {sorted(set(tc['teacher']))}")
        return preferred
    counts = tc[tc["caption"].fillna("").str.strip() != ""].groupby("teacher")["clip_id"].nunique()
    if counts.empty:
        return None
    return str(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0])


class FeatureCache:
    """Frozen features already computed, keyed by content (key-frame URIs or text), for one model.

    Stored as one .npz per model under PANDA_HOME/cache, so re-running the benchmark after a new shard
    only embeds the new clips. Callers pick the file name from the model identity; tiny random-weight
    models are not cached (they are cheap and may be rebuilt with other weights).
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._vectors: dict[str, np.ndarray] = {}
        self._dirty = False
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as data:
                    self._vectors = dict(zip(data["keys"].tolist(), data["vectors"]))
            except (OSError, ValueError, KeyError) as exc:  # a damaged cache is rebuilt, not fatal
                log.warning("feature cache %s unreadable, rebuilding: %s", self.path, exc)

    @staticmethod
    def key(parts: Sequence[str]) -> str:
        return hashlib.sha1("\n".join(parts).encode("utf-8")).hexdigest()

    def get(self, key: str) -> np.ndarray | None:
        return self._vectors.get(key)

    def put(self, key: str, vector: np.ndarray) -> None:
        self._vectors[key] = np.asarray(vector, dtype=np.float32)
        self._dirty = True

    def __len__(self) -> int:
        return len(self._vectors)

    def save(self) -> None:
        if not self._dirty or not self._vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self._vectors)
        dims = {self._vectors[k].shape for k in keys}
        if len(dims) != 1:
            raise ValueError(f"feature cache {self.path}: vectors of several shapes {dims}")
        tmp = self.path.with_name(f".{self.path.name}.tmp.npz")
        np.savez(tmp, keys=np.asarray(keys), vectors=np.stack([self._vectors[k] for k in keys]))
        os.replace(tmp, self.path)
        self._dirty = False


def video_features(clips: pd.DataFrame, load_image: LoadImage | None, embed_images: EmbedImages | None,
                   batch_clips: int = 32, cache: FeatureCache | None = None,
                   precomputed: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """Max-pooled key-frame embeddings per clip; a row of NaN for a clip none of whose frames load.

    `precomputed`: features by clip id (table `keyframe_embeddings`, `catalog_video_features`); only the
    other clips' frames are loaded and embedded."""
    precomputed = precomputed or {}
    feats: list[np.ndarray | None] = [precomputed.get(c) for c in clips["clip_id"]]
    pending: list[tuple[int, list[object], str]] = []

    def flush() -> None:
        if not pending:
            return
        images = [img for _, imgs, _ in pending for img in imgs]
        emb = np.asarray(embed_images(images), dtype=np.float32)
        pos = 0
        for idx, imgs, key in pending:
            feats[idx] = emb[pos: pos + len(imgs)].max(axis=0)
            pos += len(imgs)
            if cache is not None:
                cache.put(key, feats[idx])
        pending.clear()

    for i, uris in enumerate(clips["keyframe_uris"]):
        if feats[i] is not None:
            continue
        uris = [str(u) for u in (list(uris) if uris is not None else [])]
        key = FeatureCache.key(["video", *uris])
        cached = cache.get(key) if cache is not None and uris else None
        if cached is not None:
            feats[i] = cached
            continue
        if load_image is None or embed_images is None:
            continue  # no encoder given: only precomputed features
        images = []
        for uri in uris:
            try:
                images.append(load_image(uri))
            except Exception as exc:  # a missing frame costs this clip its feature, not the benchmark
                log.warning("key frame %s unreadable: %s", uri, exc)
        if images and len(images) == len(uris):
            pending.append((i, images, key))
        elif images:  # partial: use what loaded, but do not cache it as the clip's feature
            pending.append((i, images, FeatureCache.key(["partial", *uris])))
        if len(pending) >= batch_clips:
            flush()
    flush()
    dim = next((f.shape[0] for f in feats if f is not None), 1)
    return np.stack([f if f is not None else np.full(dim, np.nan, np.float32) for f in feats])


def text_features(texts: Sequence[str], embed_texts: EmbedTexts, cache: FeatureCache | None = None) -> np.ndarray:
    """Embeddings of the texts (each distinct text once); NaN rows for empty texts."""
    cleaned = [" ".join(str(t or "").split()) for t in texts]
    unique = sorted({t for t in cleaned if t})
    if not unique:
        return np.full((len(cleaned), 1), np.nan, dtype=np.float32)
    vectors: dict[str, np.ndarray] = {}
    todo = []
    for t in unique:
        hit = cache.get(FeatureCache.key(["text", t])) if cache is not None else None
        if hit is not None:
            vectors[t] = hit
        else:
            todo.append(t)
    if todo:
        emb = np.asarray(embed_texts(todo), dtype=np.float32)
        for t, v in zip(todo, emb):
            vectors[t] = v
            if cache is not None:
                cache.put(FeatureCache.key(["text", t]), v)
    dim = next(iter(vectors.values())).shape[0]
    out = np.full((len(cleaned), dim), np.nan, dtype=np.float32)
    for i, t in enumerate(cleaned):
        if t:
            out[i] = vectors[t]
    return out


def pil_loader(read_bytes: Callable[[str], bytes]) -> LoadImage:
    def load(uri: str):
        from PIL import Image

        with Image.open(io.BytesIO(read_bytes(uri))) as img:
            return img.convert("RGB")

    return load


@dataclass
class BenchmarkResult:
    records: list[RetrievalResultRecord]
    comparison: ComparisonResult | None
    fixed_teacher: str | None
    eval_shards: list[str]
    train_shards: list[str]
    notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        if not self.records:
            return pd.DataFrame()
        return pd.DataFrame([r.__dict__ for r in self.records]).drop(columns=["computed_at"])


def run_retrieval_benchmark(clips: pd.DataFrame, selected: pd.DataFrame, teacher_captions: pd.DataFrame,
                            subtitles: pd.DataFrame, videos: pd.DataFrame, load_image: LoadImage,
                            embed_images: EmbedImages, embed_texts: EmbedTexts,
                            config: JointEmbeddingConfig = JointEmbeddingConfig(), models_label: str = "",
                            fixed_teacher: str | None = None, accepted_only: bool = True,
                            feature_models: dict | None = None, cache: FeatureCache | None = None,
                            video_features_by_clip: Mapping[str, np.ndarray] | None = None) -> BenchmarkResult:
    """Train and evaluate the three-way comparison on the clips of every shard given.

    `cache` keeps frozen features between runs (saved at the end); `video_features_by_clip` are video
    features already computed (the other clips are embedded with `embed_images`)."""
    notes: list[str] = []
    refs = clip_references(clips, videos) if not clips.empty else {}
    eval_shards = sorted(set(clips.loc[clips["clip_id"].isin(refs), "shard"])) if refs else []
    train_clips = clips[~clips["shard"].isin(eval_shards)]
    if train_clips.empty and eval_shards:
        notes.append("every shard is an evaluation set: training on them with a held-out split, "
                     "no separate reference evaluation")
        train_clips, eval_shards = clips, []
    sel = selected.drop_duplicates("clip_id").set_index("clip_id") if not selected.empty else pd.DataFrame()
    if accepted_only and not sel.empty and "accepted" in sel:
        accepted_ids = set(sel.index[sel["accepted"].fillna(False).astype(bool)])
        curated = train_clips[train_clips["clip_id"].isin(accepted_ids)]
        if len(curated) >= 2:
            train_clips = curated
        else:
            notes.append(f"only {len(curated)} accepted clips: using every captioned clip")
    if not sel.empty:
        train_clips = train_clips[train_clips["clip_id"].isin(sel.index)]
    train_clips = train_clips.sort_values(["shard", "video_id", "start_s"]).reset_index(drop=True)
    result = BenchmarkResult([], None, None, eval_shards, sorted(set(train_clips["shard"])), notes)
    if len(train_clips) < 4:
        notes.append(f"only {len(train_clips)} curated clips with a selected caption: nothing to train on")
        return result

    ids = train_clips["clip_id"].tolist()
    teacher = choose_fixed_teacher(teacher_captions, ids, fixed_teacher)
    result.fixed_teacher = teacher
    texts = {"selected": [str(sel.loc[c, "caption"]) if c in sel.index else "" for c in ids],
             "narration": clip_narration(train_clips, subtitles)}
    if teacher is not None:
        tc = teacher_captions[teacher_captions["teacher"] == teacher].drop_duplicates("clip_id").set_index("clip_id")
        texts[f"teacher:{teacher}"] = [str(tc.loc[c, "caption"]) if c in tc.index else "" for c in ids]
    else:
        notes.append("no teacher captions: the fixed-teacher baseline is missing")
    sources = {name: TextSource(text_features(t, embed_texts, cache), t) for name, t in texts.items()}
    video = video_features(train_clips, load_image, embed_images, cache=cache, precomputed=video_features_by_clip)

    reference_sets = {}
    for shard in eval_shards:
        ev = clips[(clips["shard"] == shard) & clips["clip_id"].isin(refs)].reset_index(drop=True)
        ev_video = video_features(ev, load_image, embed_images, cache=cache, precomputed=video_features_by_clip)
        keep = np.isfinite(ev_video).all(axis=1)
        ev, ev_video = ev[keep].reset_index(drop=True), ev_video[keep]
        sentences, owner = [], []
        for i, cid in enumerate(ev["clip_id"]):
            for sentence in refs[cid]:
                sentences.append(sentence)
                owner.append(i)
        if len(ev) < 2 or not sentences:
            notes.append(f"evaluation set {shard}: fewer than two clips with key frames and references")
            continue
        reference_sets[f"references:{shard}"] = ReferenceEvalSet(ev_video, text_features(sentences, embed_texts, cache),
                                                                 owner)
    if cache is not None:
        cache.save()

    comparison = compare_text_sources(video, train_clips["video_id"].tolist(), sources, config,
                                      reference_sets=reference_sets)
    result.comparison = comparison
    for name, why in comparison.skipped.items():
        notes.append(f"{name}: not trained, {why}")
    config_json = json.dumps({"joint_embedding": json.loads(config.to_json()), "fixed_teacher": teacher,
                              "feature_models": feature_models or {}, "accepted_only": accepted_only,
                              "train_shards": result.train_shards, "eval_shards": eval_shards,
                              "n_clips_common": comparison.n_clips, "n_test_clips": comparison.n_test_clips,
                              "n_test_videos": comparison.n_test_videos, "skipped": comparison.skipped},
                             sort_keys=True)
    for row in comparison.table.itertuples(index=False):
        result.records.append(RetrievalResultRecord(
            shard=ALL_SHARDS, train_text=row.train_text, eval_set=row.eval_set, eval_text=row.eval_text,
            direction=row.direction, r1=float(row.r1), r5=float(row.r5), r10=float(row.r10),
            median_rank=float(row.median_rank), mean_rank=float(row.mean_rank), n_queries=int(row.n_queries),
            n_candidates=int(row.n_candidates), n_train_clips=int(row.n_train_clips),
            n_train_videos=int(row.n_train_videos), seed=config.seed, config_json=config_json,
            models_label=models_label,
        ))
    return result


def catalog_video_features(catalog, shards: Sequence[str], model, read_image: Callable[[str], object],
                           on_error: Callable[[str, BaseException], None] | None = None
                           ) -> tuple[dict[str, np.ndarray], int, int]:
    """(clip_id -> max-pooled key-frame embedding under `model`, n_reused, n_computed) for every clip of
    `shards`: rows of table `keyframe_embeddings` with the model's id and revision are reused, the missing
    clips are embedded and recorded."""
    from panda_dagster.lib.models.keyframes import max_embedding
    from panda_dagster.lib.selection.embeddings import shard_keyframe_embeddings

    features: dict[str, np.ndarray] = {}
    n_reused = n_computed = 0
    for shard in shards:
        rows, computed = shard_keyframe_embeddings(catalog, shard, catalog.rows("clips", shard), model, read_image,
                                                   on_error=on_error)
        features.update({clip_id: max_embedding(row) for clip_id, row in rows.items()})
        n_reused, n_computed = n_reused + len(rows) - computed, n_computed + computed
    return features, n_reused, n_computed


def benchmark_catalog(catalog, storage, shards: Sequence[str], image_model, text_model, config: BenchmarkConfig,
                      cache: FeatureCache | None = None, log: Callable[[str], None] | None = None
                      ) -> tuple[BenchmarkResult | None, dict[str, int]]:
    """The benchmark over the catalog's `shards`: (result, None without clips; key-frame embedding reuse
    counts). Video features are `image_model`'s key-frame embeddings (reused from the catalog), text
    features `text_model`'s (`embed_texts`)."""
    from panda_dagster.lib.evaluation.catalog_io import load_shard_tables
    from panda_dagster.lib.storage import artifact_reader

    say = log or log_warning
    frames = [load_shard_tables(catalog, s) for s in shards]

    def concat(attr: str) -> pd.DataFrame:
        parts = [getattr(f, attr) for f in frames if not getattr(f, attr).empty]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    clips = concat("clips")
    if clips.empty:
        return None, {"keyframe_embeddings_reused": 0, "keyframe_embeddings_computed": 0}
    load_image = pil_loader(artifact_reader(storage))
    features, n_reused, n_computed = catalog_video_features(
        catalog, shards, image_model, load_image, on_error=lambda clip, exc: say(f"key frames of {clip} unreadable: {exc}"))
    result = run_retrieval_benchmark(
        clips, concat("selected_captions"), concat("teacher_captions"), concat("subtitles"), concat("videos"),
        load_image, image_model.embed_images, text_model.embed_texts, config.joint, models_label=image_model.label,
        fixed_teacher=config.fixed_teacher or None, accepted_only=config.accepted_only, cache=cache,
        feature_models={"video": f"{image_model.label}: key-frame embeddings, max-pooled",
                        "text": f"{text_model.label}: text embeddings"},
        video_features_by_clip=features,
    )
    for note in result.notes:
        say(note)
    return result, {"keyframe_embeddings_reused": n_reused, "keyframe_embeddings_computed": n_computed}


def log_warning(message: str) -> None:
    log.warning(message)
