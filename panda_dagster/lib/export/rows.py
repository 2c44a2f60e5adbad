"""The rows every export format writes: one `DatasetRow` per exported clip, assembled from the catalog.

A clip is exported when it has a selected caption, is not quarantined (its video dropped, or the clip
itself as `clip:<id>`) and was not dropped by the clip filters (table `clip_filters`, keep=False; a shard
without `clip_filters` rows keeps every clip). `accepted_only` / `min_score` narrow the set further.
Rows come back in one fixed order (shard, video, start, end, clip id) so every format is deterministic.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.filters.decisions import TABLE as CLIP_FILTERS_TABLE  # read only where the schema declares it
from panda_dagster.lib.records import CUE_SOURCE_ASR

# clip_filters columns that are not scores.
_FILTER_NON_SCORE = {"clip_id", "shard", "video_id", "keep", "reasons", "duplicate_of", "created_at",
                     "computed_at", "models_label", "duration_s"}
LICENSE_KEYS = ("license", "licence", "license_url")


@dataclass
class Candidate:
    """One caption a teacher wrote for the clip, with the scorer's verdict."""

    teacher: str
    caption: str
    kind: str | None = None
    model_id: str | None = None
    revision: str | None = None
    profile: str | None = None
    score: float | None = None
    rank: int | None = None  # 1 = selected
    selected: bool = False


@dataclass
class SourceVideo:
    video_id: str
    uri: str  # where the source video is (local path, s3:// or http(s)://)
    local_path: str | None  # where this machine reads it (not exported: machine-specific)
    sha256: str | None
    title: str | None
    description: str | None
    url: str | None  # the video's public page, when the manifest gave one
    license: str | None  # manifest `license` column or NAME.json sidecar key
    width: int | None
    height: int | None
    fps: float | None
    duration_s: float | None
    codec: str | None
    container: str | None
    has_audio: bool | None


@dataclass
class FilterDecision:
    keep: bool
    reasons: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)  # one entry per clip_filters score column
    duplicate_of: str | None = None


@dataclass
class SubtitleLine:
    start_s: float
    end_s: float
    text: str
    source: str  # subtitle | asr


@dataclass
class DatasetRow:
    clip_id: str
    shard: str
    video_id: str
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int
    method: str  # how the clip was cut: stitched | shot | narration | given
    detector: str
    n_shots_merged: int
    split_quality: float | None
    narration: str | None
    keyframe_uris: list[str]
    clip_uri: str | None
    clip_models_label: str  # embedding model that cut / scored the clip (TINY label for tiny models)
    caption: str  # the selected caption
    teacher: str  # its teacher
    matching_score: float
    margin_to_second: float
    accepted: bool
    reject_reason: str | None
    n_candidates: int
    scorer: str
    selection_model_version: str | None
    models_label: str  # selection's models label (TINY label when the scorer was random)
    candidates: list[Candidate]
    source: SourceVideo
    filters: FilterDecision | None  # None = no clip filter ran on this shard
    subtitles: list[SubtitleLine]  # cues overlapping the clip

    @property
    def key(self) -> str:
        """Sample key (WebDataset): the clip id; it has no dots, so `KEY.mp4` splits cleanly."""
        return self.clip_id

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_json_dict(self) -> dict:
        """The record JSONL lines and WebDataset `KEY.json` hold (same fields in both)."""
        from panda_dagster.lib.export.panda70m_csv import panda_timecode

        source = asdict(self.source)
        source.pop("local_path")
        return {
            "key": self.key,
            "clip_id": self.clip_id,
            "shard": self.shard,
            "video_id": self.video_id,
            "span": {
                "start_s": round(self.start_s, 6), "end_s": round(self.end_s, 6),
                "duration_s": round(self.duration_s, 6),
                "timestamp": [panda_timecode(self.start_s), panda_timecode(self.end_s)],
                "start_frame": self.start_frame, "end_frame": self.end_frame,
            },
            "caption": self.caption,
            "teacher": self.teacher,
            "matching_score": self.matching_score,
            "margin_to_second": self.margin_to_second,
            "accepted": self.accepted,
            "reject_reason": self.reject_reason,
            "scorer": self.scorer,
            "selection_model_version": self.selection_model_version,
            "models_label": self.models_label,
            "clip": {
                "method": self.method, "detector": self.detector, "n_shots_merged": self.n_shots_merged,
                "split_quality": self.split_quality, "narration": self.narration,
                "keyframe_uris": list(self.keyframe_uris), "clip_uri": self.clip_uri,
                "models_label": self.clip_models_label,
            },
            "source": source,
            "license": self.source.license,
            "candidates": [asdict(c) for c in self.candidates],
            "filters": asdict(self.filters) if self.filters is not None else None,
            "subtitles": [asdict(s) for s in self.subtitles],
            "file": None,  # WebDataset: the span the cut KEY.mp4 really holds (a stream copy may start late)
        }


@dataclass
class DatasetSelection:
    """What the export holds and why the other clips are not in it."""

    rows: list[DatasetRow]
    shards: list[str]
    excluded: Counter = field(default_factory=Counter)  # reason -> clips left out
    n_selected: int = 0  # clips with a selected caption, before any exclusion
    bar_hints: dict = field(default_factory=dict)  # what the catalog tells about the selection bar


class ExportSelectionError(ValueError):
    """The requested shards cannot be exported (unknown shard, nothing selected yet)."""


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _metadata(metadata_json: str | None) -> dict:
    if not metadata_json:
        return {}
    try:
        value = json.loads(metadata_json)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def license_of(metadata: dict) -> str | None:
    for key in LICENSE_KEYS:
        value = metadata.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def _source(video) -> SourceVideo:
    probe = getattr(video, "probe", video)  # VideoRecord holds a ProbeResult (older rows were flat)
    meta = _metadata(video.metadata_json)
    return SourceVideo(
        video_id=video.video_id, uri=video.uri, local_path=video.local_path,
        sha256=getattr(probe, "sha256", None), title=video.title, description=video.description,
        url=video.url, license=license_of(meta), width=getattr(probe, "width", None),
        height=getattr(probe, "height", None), fps=getattr(probe, "fps", None),
        duration_s=getattr(probe, "duration_s", None), codec=getattr(probe, "codec", None),
        container=getattr(probe, "container", None), has_audio=getattr(probe, "has_audio", None))


def _filter_decisions(catalog: Catalog, shard: str) -> dict[str, FilterDecision]:
    """The clip filters' decision per clip (empty when the shard has no clip_filters rows: all kept)."""
    if CLIP_FILTERS_TABLE not in catalog.tables:
        return {}
    try:
        from panda_dagster.lib.filters.records import SCORE_COLUMNS
    except ImportError:  # the filters' records moved: take every numeric column as a score
        SCORE_COLUMNS = None
    decisions = {}
    for record in catalog.read_shard(CLIP_FILTERS_TABLE, shard).to_dict("records"):
        names = SCORE_COLUMNS if SCORE_COLUMNS is not None else [
            n for n, v in record.items() if n not in _FILTER_NON_SCORE and isinstance(v, int | float)
            and not isinstance(v, bool)]
        scores = {n: float(record[n]) for n in names if _clean(record.get(n)) is not None}
        reasons = record.get("reasons")
        decisions[record["clip_id"]] = FilterDecision(
            keep=bool(record.get("keep", True)), reasons=[str(r) for r in (reasons if reasons is not None else [])],
            scores=dict(sorted(scores.items())), duplicate_of=_clean(record.get("duplicate_of")))
    return decisions


def _cues(catalog: Catalog, shard: str) -> dict[str, list[SubtitleLine]]:
    by_video: dict[str, list[SubtitleLine]] = {}
    for cue in catalog.rows("subtitles", shard):  # both parts: `subtitle` (files, inline) and `asr`
        by_video.setdefault(cue.video_id, []).append(SubtitleLine(
            float(cue.start_s), float(cue.end_s), cue.text, "asr" if cue.source == CUE_SOURCE_ASR else "subtitle"))
    for lines in by_video.values():
        lines.sort(key=lambda c: (c.start_s, c.end_s, c.source, c.text))
    return by_video


# Stages whose dropped videos never reach `videos`: their rows (e.g. a second manifest row naming the same
# video_id as a kept one) say nothing about the videos that are there.
_BEFORE_VIDEOS = ("ingest", "raw_videos")


def _quarantined(catalog: Catalog, shard: str) -> tuple[set[str], set[str]]:
    """(clip ids quarantined as `clip:<id>`, video ids a later stage dropped as a whole)."""
    clips, videos = set(), set()
    for q in catalog.rows("quarantine", shard):
        if q.uri.startswith("clip:"):
            clips.add(q.uri[len("clip:"):])
        elif q.action == "dropped" and q.video_id and q.stage not in _BEFORE_VIDEOS:
            videos.add(q.video_id)
    return clips, videos


def selectable_shards(catalog: Catalog) -> list[str]:
    return catalog.shards("selected_captions")


def load_dataset_rows(catalog: Catalog, shards: Sequence[str] | None = None, *, accepted_only: bool = False,
                      min_score: float | None = None) -> DatasetSelection:
    """Every exportable clip of `shards` (default: every shard with selected captions)."""
    known = selectable_shards(catalog)
    if shards:
        unknown = sorted(set(shards) - set(known))
        if unknown:
            raise ExportSelectionError(
                f"no selected captions for shard(s) {', '.join(unknown)}; shards with selected captions: "
                f"{', '.join(known) or 'none (materialize selected_captions first)'}")
        wanted = sorted(set(shards))
    else:
        wanted = known
    selection = DatasetSelection(rows=[], shards=wanted)
    accepted_scores, below_bar_scores = [], []
    for shard in wanted:
        selected = catalog.rows("selected_captions", shard)
        selection.n_selected += len(selected)
        clips = {c.clip_id: c for c in catalog.rows("clips", shard)}
        videos = {v.video_id: v for v in catalog.rows("videos", shard)}
        teacher_rows: dict[str, list] = {}
        for t in catalog.rows("teacher_captions", shard):
            teacher_rows.setdefault(t.clip_id, []).append(t)
        scores: dict[tuple[str, str], object] = {(s.clip_id, s.teacher): s for s in catalog.rows("caption_scores", shard)}
        filters = _filter_decisions(catalog, shard)
        cues = _cues(catalog, shard)
        bad_clips, bad_videos = _quarantined(catalog, shard)
        for sel in selected:
            clip, video = clips.get(sel.clip_id), videos.get(sel.video_id)
            if sel.accepted:
                accepted_scores.append(sel.matching_score)
            elif sel.reject_reason == "below_quality_bar":
                below_bar_scores.append(sel.matching_score)
            reason = None
            if clip is None or video is None:
                reason = "clip or video row missing (stale selection)"
            elif sel.clip_id in bad_clips or sel.video_id in bad_videos:
                reason = "quarantined"
            elif sel.clip_id in filters and not filters[sel.clip_id].keep:
                reason = "dropped by clip filters"
            elif accepted_only and not sel.accepted:
                reason = "not accepted (--accepted-only)"
            elif min_score is not None and not sel.matching_score >= min_score:
                reason = f"matching_score below --min-score {min_score}"
            if reason:
                selection.excluded[reason] += 1
                continue
            selection.rows.append(_row(sel, clip, video, teacher_rows.get(sel.clip_id, []), scores,
                                       filters.get(sel.clip_id) if filters else None, cues.get(sel.video_id, [])))
    selection.rows.sort(key=lambda r: (r.shard, r.video_id, r.start_s, r.end_s, r.clip_id))
    selection.bar_hints = {
        "lowest_accepted_score": min(accepted_scores) if accepted_scores else None,
        "highest_below_bar_score": max(below_bar_scores) if below_bar_scores else None,
    }
    return selection


def _row(sel, clip, video, teacher_rows: Iterable, scores: dict, decision: FilterDecision | None,
         cues: list[SubtitleLine]) -> DatasetRow:
    candidates = []
    seen = set()
    for t in sorted(teacher_rows, key=lambda t: t.teacher):
        score = scores.get((sel.clip_id, t.teacher))
        seen.add(t.teacher)
        candidates.append(Candidate(
            teacher=t.teacher, caption=t.caption, kind=t.kind, model_id=t.model_id, revision=t.revision,
            profile=t.profile, score=_clean(score.score) if score is not None else None,
            rank=score.rank if score is not None else None, selected=t.teacher == sel.teacher))
    # Scored candidates whose teacher row is gone (e.g. re-captioned since) still say what was compared.
    for (clip_id, teacher), score in sorted(scores.items()):
        if clip_id == sel.clip_id and teacher not in seen:
            candidates.append(Candidate(teacher=teacher, caption=score.caption, score=_clean(score.score),
                                        rank=score.rank, selected=teacher == sel.teacher))
    candidates.sort(key=lambda c: (c.rank if c.rank is not None else 1 << 30, c.teacher))
    overlapping = [c for c in cues if c.start_s < clip.end_s and c.end_s > clip.start_s]
    return DatasetRow(
        clip_id=sel.clip_id, shard=sel.shard, video_id=sel.video_id, start_s=float(clip.start_s),
        end_s=float(clip.end_s), start_frame=int(clip.start_frame), end_frame=int(clip.end_frame),
        method=clip.method, detector=clip.detector, n_shots_merged=int(clip.n_shots_merged),
        split_quality=_clean(clip.split_quality), narration=clip.narration,
        keyframe_uris=list(clip.keyframe_uris or []), clip_uri=clip.clip_uri, clip_models_label=clip.models_label,
        caption=sel.caption, teacher=sel.teacher, matching_score=float(sel.matching_score),
        margin_to_second=float(sel.margin_to_second), accepted=bool(sel.accepted), reject_reason=sel.reject_reason,
        n_candidates=int(sel.n_candidates), scorer=sel.scorer, selection_model_version=sel.selection_model_version,
        models_label=sel.models_label, candidates=candidates, source=_source(video), filters=decision,
        subtitles=overlapping)
