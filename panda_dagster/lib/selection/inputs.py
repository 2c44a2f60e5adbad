"""What selection reads from the catalog: clips with their key frames and their candidate captions."""

from __future__ import annotations

import math
from collections.abc import Iterable

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.selection.finetune import PreferenceExample
from panda_dagster.lib.selection.scorer import Candidate, ClipToScore


def _register_inputs() -> None:
    # The upstream stages own these tables; importing their records registers them.
    from panda_dagster.lib.teachers import records as _teachers  # noqa: F401
    from panda_dagster.lib.video import records as _video  # noqa: F401


def _candidates(rows: Iterable[dict]) -> dict[str, list[Candidate]]:
    """Candidates per clip in a stable order (teacher name), one per distinct (teacher, caption)."""
    by_clip: dict[str, list[Candidate]] = {}
    for row in sorted(rows, key=lambda r: (r["clip_id"], r["teacher"], r["caption"] or "")):
        caption = row["caption"]
        if not isinstance(caption, str) or not caption.strip():
            continue
        candidate = Candidate(row["teacher"], caption.strip())
        existing = by_clip.setdefault(row["clip_id"], [])
        if candidate not in existing:
            existing.append(candidate)
    return by_clip


def _clip(row: dict, shard: str, candidates: dict[str, list[Candidate]]) -> ClipToScore:
    uris = row.get("keyframe_uris")
    uris = [] if uris is None or (isinstance(uris, float) and math.isnan(uris)) else [str(u) for u in uris]
    return ClipToScore(row["clip_id"], row["video_id"], shard, candidates.get(row["clip_id"], []), uris)


def load_shard_clips(catalog: Catalog, shard: str) -> list[ClipToScore]:
    """Every clip of the shard (clip order of the `clips` table) with its teacher captions as candidates."""
    _register_inputs()
    clips = catalog.read_shard("clips", shard)
    captions = catalog.read_shard("teacher_captions", shard)
    candidates = _candidates(captions[["clip_id", "teacher", "caption"]].to_dict("records"))
    clips = clips.sort_values(["video_id", "start_s", "clip_id"])
    return [_clip(row, shard, candidates) for row in clips[["clip_id", "video_id", "keyframe_uris"]].to_dict("records")]


def load_clips_by_id(catalog: Catalog, clip_ids: Iterable[str]) -> dict[str, ClipToScore]:
    """Clips (any shard) with their current candidates, for resolving imported labels."""
    _register_inputs()
    ids = sorted(set(clip_ids))
    if not ids:
        return {}
    clips = catalog.query(
        "SELECT clip_id, video_id, shard, keyframe_uris FROM clips WHERE clip_id IN (SELECT unnest(?))", [ids]
    )
    captions = catalog.query(
        "SELECT clip_id, teacher, caption FROM teacher_captions WHERE clip_id IN (SELECT unnest(?))", [ids]
    )
    candidates = _candidates(captions.to_dict("records"))
    return {row["clip_id"]: _clip(row, row["shard"], candidates) for row in clips.to_dict("records")}


def load_preference_examples(catalog: Catalog) -> tuple[list[PreferenceExample], int]:
    """Labelled clips usable for fine-tuning, and how many "all bad" labels were left out.

    A clip labelled several times (several annotators or files) yields one example per label: people
    disagree (Panda-70M measured 44.9 % agreement), and the objective then averages their choices.
    """
    from panda_dagster.lib.selection import records as _records  # noqa: F401  registers caption_preferences

    frame = catalog.query(
        "SELECT clip_id, video_id, candidates, chosen_caption, all_bad, keyframe_uris, label_id "
        "FROM caption_preferences ORDER BY clip_id, label_id"
    )
    examples, n_all_bad = [], 0
    for row in frame.to_dict("records"):
        if row["all_bad"]:
            n_all_bad += 1
            continue
        candidates = [str(c) for c in row["candidates"]]
        if row["chosen_caption"] not in candidates or len(candidates) < 2:
            continue  # nothing to learn from a single candidate
        examples.append(PreferenceExample(
            clip_id=row["clip_id"], video_id=row["video_id"], candidates=candidates,
            chosen_index=candidates.index(row["chosen_caption"]),
            keyframe_uris=[str(u) for u in row["keyframe_uris"]],
        ))
    return examples, n_all_bad
