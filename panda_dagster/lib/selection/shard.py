"""Selecting the captions of one shard: what `selected_captions` does, without Dagster.

Steps: read the shard's clips with their candidate captions (`inputs`), take the clips' key-frame
embeddings under the scorer's image model from table `keyframe_embeddings` (computed at `clips`) and
embed only the clips that have none there yet (those are recorded, so the next reader finds them), score
every candidate against its clip and pick the best (`scorer`), and mark the clips the clip filters dropped
as not accepted. Clips whose key frames cannot be read go to quarantine; the rest of the shard goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.models.keyframes import mean_embedding
from panda_dagster.lib.records import QuarantineRecord
from panda_dagster.lib.selection.embeddings import shard_keyframe_embeddings
from panda_dagster.lib.filters.decisions import dropped_reasons
from panda_dagster.lib.selection.inputs import load_shard_clips
from panda_dagster.lib.selection.records import REJECT_FILTERED, CaptionScore, SelectedCaption
from panda_dagster.lib.selection.scorer import (
    DEFAULT_MIN_SCORE,
    CaptionScorer,
    SelectionPolicy,
    decode_jpeg,
    select_captions,
)
from panda_dagster.lib.storage import artifact_reader

STAGE = "selected_captions"


@dataclass(frozen=True)
class SelectionConfig:
    """How `selected_captions` scores and accepts clips."""

    min_score: float | None = field(default=DEFAULT_MIN_SCORE, metadata={"help": (
        "Quality bar: a clip is `accepted` when its selected caption scores above this (cosine). 0.28 is "
        "LAION-5B's CLIP filter; Panda-70M's 10M subset used > 0.43 on its own fine-tuned model's scale. "
        "null = no bar.")})
    max_clips_per_video: int | None = field(default=None, metadata={"help": (
        "Accept at most this many clips per video, best scores first (Panda-70M's 10M subset keeps <= 3); "
        "null = no cap")})
    use_selection_model: bool = field(default=True, metadata={"help": (
        "Score with the newest fine-tuned selection model of this models profile (falls back to the base "
        "model when none exists)")})
    clips_per_batch: int = field(default=64, metadata={"help": "Clips whose key frames are embedded together"})
    image_batch_size: int = field(default=64, metadata={"help": "Key frames per forward pass"})

    @property
    def policy(self) -> SelectionPolicy:
        return SelectionPolicy(self.min_score, self.max_clips_per_video)


@dataclass
class ShardSelection:
    shard: str
    n_clips: int
    selected: list[SelectedCaption]
    scores: list[CaptionScore]
    quarantine: list[QuarantineRecord]
    n_without_candidates: int
    n_filtered: int  # clips with captions that the clip filters dropped: selected, never accepted
    n_embeddings_reused: int  # clips whose key-frame embeddings came from `keyframe_embeddings`
    n_embeddings_computed: int


def keyframe_image_reader(storage) -> Callable[[str], object]:
    """Key-frame URI -> decoded RGB array."""
    read = artifact_reader(storage)
    return lambda uri: decode_jpeg(read(uri))


def select_with_filters(scored, dropped: dict[str, list[str]], policy: SelectionPolicy, scorer: CaptionScorer,
                        models_label: str) -> tuple[list[SelectedCaption], list[CaptionScore], int]:
    """(selected, scores, n_filtered): the policy applies to the clips the filters kept; a dropped clip keeps
    its best caption for inspection but is never accepted, nor takes a slot of the per-video cap."""
    kept = [s for s in scored if s.clip.clip_id not in dropped]
    selected, scores = select_captions(kept, policy, scorer.name, models_label, scorer.version)
    filtered, filtered_scores = select_captions([s for s in scored if s.clip.clip_id in dropped],
                                                SelectionPolicy(None, None), scorer.name, models_label, scorer.version)
    for row in filtered:
        row.accepted, row.reject_reason = False, REJECT_FILTERED
    return selected + filtered, scores + filtered_scores, len(filtered)


def select_shard(catalog: Catalog, shard: str, scorer: CaptionScorer, config: SelectionConfig,
                 read_image: Callable[[str], object], models_label: str) -> ShardSelection:
    """Score and select the shard's captions (nothing is written but new key-frame embeddings)."""
    clips = load_shard_clips(catalog, shard)
    with_candidates = [c for c in clips if c.candidates]
    failures: dict[str, str] = {}
    rows, n_computed = shard_keyframe_embeddings(
        catalog, shard, with_candidates, scorer.image_model, read_image, batch_size=config.image_batch_size,
        clips_per_batch=config.clips_per_batch,
        on_error=lambda clip_id, exc: failures.__setitem__(clip_id, f"key frames unreadable: {type(exc).__name__}: {exc}"))
    embeddings = {clip_id: mean_embedding(row) for clip_id, row in rows.items()}
    scorable = [c for c in with_candidates if c.clip_id in embeddings]
    scored, _ = scorer.score(scorable, None, config.clips_per_batch, config.image_batch_size, precomputed=embeddings)
    # A clip without candidates is not a problem of its own (no teacher captioned it, e.g. filtered out).
    quarantine = [QuarantineRecord(shard, f"clip:{c.clip_id}", STAGE, failures.get(c.clip_id, "no key frames"),
                                   c.video_id, "dropped") for c in with_candidates if c.clip_id not in embeddings]
    selected, score_rows, n_filtered = select_with_filters(scored, dropped_reasons(catalog, shard), config.policy,
                                                           scorer, models_label)
    order = {c.clip_id: i for i, c in enumerate(clips)}
    selected.sort(key=lambda s: order[s.clip_id])
    return ShardSelection(
        shard=shard, n_clips=len(clips), selected=selected, scores=score_rows,
        quarantine=quarantine, n_without_candidates=len(clips) - len(with_candidates), n_filtered=n_filtered,
        n_embeddings_reused=len(rows) - n_computed, n_embeddings_computed=n_computed,
    )


def write_selection(catalog: Catalog, selection: ShardSelection) -> None:
    """Replace the shard's rows of `selected_captions`, `caption_scores` and this stage's quarantine."""
    catalog.replace_shard("selected_captions", selection.shard, selection.selected)
    catalog.replace_shard("caption_scores", selection.shard, selection.scores)
    catalog.replace_shard("quarantine", selection.shard, selection.quarantine, part=STAGE)
