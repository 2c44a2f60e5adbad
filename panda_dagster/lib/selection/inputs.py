"""What selection reads from the catalog: clips with their key frames, their candidate captions, the clip
filters' decisions and the human labels, all as typed rows (`Catalog.rows`)."""

from __future__ import annotations

from collections.abc import Iterable

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.selection.finetune import PreferenceExample
from panda_dagster.lib.selection.scorer import Candidate, ClipToScore
from panda_dagster.lib.teachers.records import TeacherCaption
from panda_dagster.lib.video.records import ClipRecord



def _candidates(captions: Iterable[TeacherCaption]) -> dict[str, list[Candidate]]:
    """Candidates per clip in a stable order (teacher name), one per distinct (teacher, caption)."""
    by_clip: dict[str, list[Candidate]] = {}
    for row in sorted(captions, key=lambda r: (r.clip_id, r.teacher, r.caption or "")):
        if not isinstance(row.caption, str) or not row.caption.strip():
            continue
        candidate = Candidate(row.teacher, row.caption.strip())
        existing = by_clip.setdefault(row.clip_id, [])
        if candidate not in existing:
            existing.append(candidate)
    return by_clip


def _to_score(clip: ClipRecord, candidates: dict[str, list[Candidate]]) -> ClipToScore:
    return ClipToScore(clip.clip_id, clip.video_id, clip.shard, candidates.get(clip.clip_id, []),
                       [str(u) for u in clip.keyframe_uris or []])


def load_shard_clips(catalog: Catalog, shard: str) -> list[ClipToScore]:
    """Every clip of the shard (by video and start time) with its teacher captions as candidates."""
    candidates = _candidates(catalog.rows("teacher_captions", shard))
    clips = sorted(catalog.rows("clips", shard), key=lambda c: (c.video_id, c.start_s, c.clip_id))
    return [_to_score(clip, candidates) for clip in clips]


def _shards_of(catalog: Catalog, table: str, clip_ids: list[str]) -> list[str]:
    found = catalog.query(f"SELECT DISTINCT shard FROM {table} WHERE clip_id IN (SELECT unnest(?))", [clip_ids])
    return sorted(found["shard"])


def load_clips_by_id(catalog: Catalog, clip_ids: Iterable[str]) -> dict[str, ClipToScore]:
    """Clips (any shard) with their current candidates, for resolving imported labels."""
    ids = sorted(set(clip_ids))
    if not ids:
        return {}
    wanted, out = set(ids), {}
    for shard in _shards_of(catalog, "clips", ids):
        candidates = _candidates(c for c in catalog.rows("teacher_captions", shard) if c.clip_id in wanted)
        out.update({clip.clip_id: _to_score(clip, candidates) for clip in catalog.rows("clips", shard)
                    if clip.clip_id in wanted})
    return out


def load_preference_examples(catalog: Catalog) -> tuple[list[PreferenceExample], int]:
    """Labelled clips usable for fine-tuning, and how many "all bad" labels were left out.

    A clip labelled several times (several annotators or files) yields one example per label: people
    disagree (Panda-70M measured 44.9 % agreement), and the objective then averages their choices.
    """
    labels = [row for shard in catalog.shards("caption_preferences") for row in catalog.rows("caption_preferences", shard)]
    examples, n_all_bad = [], 0
    for row in sorted(labels, key=lambda r: (r.clip_id, r.label_id)):
        if row.all_bad:
            n_all_bad += 1
            continue
        candidates = [str(c) for c in row.candidates]
        if row.chosen_caption not in candidates or len(candidates) < 2:
            continue  # nothing to learn from a single candidate
        examples.append(PreferenceExample(
            clip_id=row.clip_id, video_id=row.video_id, candidates=candidates,
            chosen_index=candidates.index(row.chosen_caption), keyframe_uris=[str(u) for u in row.keyframe_uris],
        ))
    return examples, n_all_bad
