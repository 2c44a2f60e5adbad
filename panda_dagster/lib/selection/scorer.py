"""Score every candidate caption of a clip and pick the best one.

A clip is represented by the normalised mean of its key-frame embeddings (a cheap, order-free video
embedding that works for any image-text model); each candidate caption is embedded by the text tower
(the tokenizer truncates long captions to the model's context length), and the score is the cosine
between the two. The same scorer serves the pretrained base model and a fine-tuned selection model.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from panda_dagster.lib.models.openclip import OpenClipModel
from panda_dagster.lib.selection.records import (
    REJECT_BELOW_BAR,
    REJECT_PER_VIDEO_CAP,
    CaptionScore,
    SelectedCaption,
)
from panda_dagster.lib.storage import artifact_reader

# LAION-5B kept English image-text pairs whose CLIP cosine was >= 0.28; Panda-70M's 0.43 bar is on the
# scale of their own fine-tuned retrieval model, not on raw CLIP cosine, so it cannot be reused as is.
DEFAULT_MIN_SCORE = 0.28


@dataclass(frozen=True)
class Candidate:
    teacher: str
    caption: str


@dataclass
class ClipToScore:
    clip_id: str
    video_id: str
    shard: str
    candidates: list[Candidate]
    keyframe_uris: list[str] = field(default_factory=list)
    frames: list[np.ndarray] | None = None  # decoded key frames (HxWx3 uint8); loaded from URIs if None


@dataclass
class ScoredClip:
    clip: ClipToScore
    scores: np.ndarray  # (n_candidates,) cosine scores, same order as clip.candidates

    @property
    def ranking(self) -> np.ndarray:
        """Candidate indices best first; ties keep candidate order (stable), so runs are reproducible."""
        return np.argsort(-self.scores, kind="stable")


@dataclass
class UnscorableClip:
    clip_id: str
    video_id: str
    shard: str
    reason: str


FramesLoader = Callable[[ClipToScore], list[np.ndarray]]


def decode_jpeg(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def storage_frames_loader(storage) -> FramesLoader:
    """Decoded key frames of a clip, read through `storage.artifact_reader`."""
    read = artifact_reader(storage)

    def load(clip: ClipToScore) -> list[np.ndarray]:
        return [decode_jpeg(read(uri)) for uri in clip.keyframe_uris]

    return load


def clip_embeddings(frame_embeddings: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Normalised mean of each clip's consecutive block of frame embeddings."""
    out = np.zeros((len(counts), frame_embeddings.shape[1]), dtype=np.float32)
    start = 0
    for index, count in enumerate(counts):
        mean = frame_embeddings[start : start + count].mean(axis=0)
        out[index] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        start += count
    return out


class CaptionScorer:
    """Cosine between a clip's mean key-frame embedding and each candidate caption's embedding."""

    def __init__(self, model: OpenClipModel, name: str | None = None, version: str | None = None):
        self.model = model
        self.version = version  # selection-model version, None for the pretrained base model
        self.name = name or (f"selection_model {version}" if version else getattr(model, "name", model.label))

    @property
    def image_model(self) -> OpenClipModel:
        """The model whose key-frame embeddings this scorer compares with captions (`lib.models.keyframes`)."""
        return self.model

    def close(self) -> None:
        self.model.close()

    def score(
        self,
        clips: Sequence[ClipToScore],
        frames_loader: FramesLoader | None = None,
        clips_per_batch: int = 64,
        image_batch_size: int = 64,
        text_batch_size: int = 256,
        precomputed: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[list[ScoredClip], list[UnscorableClip]]:
        """Scores per clip; clips without candidates or readable key frames come back as unscorable.

        `precomputed`: unit-norm clip embeddings by clip id (`lib.models.keyframes.
        mean_embedding` of this scorer's `image_model`); those clips' frames are neither read nor embedded.
        """
        precomputed = precomputed or {}
        scored: list[ScoredClip] = []
        unscorable: list[UnscorableClip] = []
        for start in range(0, len(clips), clips_per_batch):
            frames, counts, ready, known = [], [], [], []
            for clip in clips[start : start + clips_per_batch]:
                if not clip.candidates:
                    unscorable.append(UnscorableClip(clip.clip_id, clip.video_id, clip.shard, "no candidate captions"))
                    continue
                if clip.clip_id in precomputed:
                    known.append(clip)
                    continue
                try:
                    clip_frames = clip.frames if clip.frames is not None else (frames_loader or _no_loader)(clip)
                except Exception as exc:  # unreadable frame file: that clip is skipped, the shard goes on
                    reason = f"key frames unreadable: {type(exc).__name__}: {exc}"
                    unscorable.append(UnscorableClip(clip.clip_id, clip.video_id, clip.shard, reason))
                    continue
                if not clip_frames:
                    unscorable.append(UnscorableClip(clip.clip_id, clip.video_id, clip.shard, "no key frames"))
                    continue
                frames.extend(clip_frames)
                counts.append(len(clip_frames))
                ready.append(clip)
            if not ready and not known:
                continue
            video = np.zeros((0, self.model.embed_dim), dtype=np.float32)
            if ready:
                video = clip_embeddings(self.model.embed_images(frames, batch_size=image_batch_size), counts)
            if known:
                video = np.concatenate([video, np.stack([np.asarray(precomputed[c.clip_id], dtype=np.float32)
                                                         for c in known])])
            batch_clips = ready + known
            texts = sorted({c.caption for clip in batch_clips for c in clip.candidates})
            text_index = {text: i for i, text in enumerate(texts)}
            text_embeddings = self.model.embed_texts(texts, batch_size=text_batch_size)
            for row, clip in enumerate(batch_clips):
                idx = [text_index[c.caption] for c in clip.candidates]
                scored.append(ScoredClip(clip, (text_embeddings[idx] @ video[row]).astype(np.float64)))
        order = {clip.clip_id: i for i, clip in enumerate(clips)}
        scored.sort(key=lambda item: order[item.clip.clip_id])
        return scored, unscorable


def _no_loader(clip: ClipToScore) -> list[np.ndarray]:
    raise ValueError(f"clip {clip.clip_id}: no frames given and no frames loader")


@dataclass(frozen=True)
class SelectionPolicy:
    min_score: float | None = DEFAULT_MIN_SCORE  # quality bar for `accepted`; None = no bar
    max_clips_per_video: int | None = None  # keep at most this many accepted clips per video (best first)


def select_captions(
    scored: Sequence[ScoredClip],
    policy: SelectionPolicy,
    scorer_name: str,
    models_label: str,
    selection_model_version: str | None = None,
) -> tuple[list[SelectedCaption], list[CaptionScore]]:
    """The best candidate of every scored clip, with acceptance by quality bar and per-video cap."""
    selected: list[SelectedCaption] = []
    score_rows: list[CaptionScore] = []
    for item in scored:
        clip, ranking = item.clip, item.ranking
        for rank, index in enumerate(ranking, start=1):
            candidate = clip.candidates[index]
            score_rows.append(CaptionScore(clip.clip_id, clip.shard, candidate.teacher, candidate.caption,
                                           float(item.scores[index]), rank, clip.video_id, selection_model_version))
        best = clip.candidates[ranking[0]]
        top = float(item.scores[ranking[0]])
        margin = top - float(item.scores[ranking[1]]) if len(ranking) > 1 else 0.0
        below = policy.min_score is not None and not top > policy.min_score
        selected.append(SelectedCaption(
            clip_id=clip.clip_id, shard=clip.shard, caption=best.caption, teacher=best.teacher,
            matching_score=top, margin_to_second=margin, video_id=clip.video_id,
            n_candidates=len(clip.candidates), accepted=not below,
            reject_reason=REJECT_BELOW_BAR if below else None, scorer=scorer_name,
            selection_model_version=selection_model_version, models_label=models_label,
        ))
    if policy.max_clips_per_video is not None:
        by_video: dict[str, list[SelectedCaption]] = {}
        for row in selected:
            if row.accepted:
                by_video.setdefault(row.video_id, []).append(row)
        for rows in by_video.values():
            rows.sort(key=lambda r: (-r.matching_score, r.clip_id))
            for row in rows[policy.max_clips_per_video:]:
                row.accepted, row.reject_reason = False, REJECT_PER_VIDEO_CAP
    return selected, score_rows


def teacher_win_rates(selected: Sequence[SelectedCaption]) -> dict[str, float]:
    """Share of clips whose selected caption came from each teacher."""
    if not selected:
        return {}
    counts: dict[str, int] = {}
    for row in selected:
        counts[row.teacher] = counts.get(row.teacher, 0) + 1
    return {teacher: round(n / len(selected), 4) for teacher, n in sorted(counts.items(), key=lambda kv: -kv[1])}
