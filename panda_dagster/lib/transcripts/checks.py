"""Data-quality checks of the `transcripts` stage (pure: rows in, `CheckOutcome` out)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from panda_dagster.lib.checks import CheckOutcome, Violation
from panda_dagster.lib.records import CUE_SOURCE_ASR, Cue
from panda_dagster.lib.transcripts import records as status
from panda_dagster.lib.transcripts.records import Transcript

TIME_EPS_S = 0.05  # word timestamps are rounded to 20 ms frames by Whisper


def check_one_transcript_per_video(video_ids: Sequence[str], transcripts: Sequence[Transcript]) -> CheckOutcome:
    counts = Counter(t.video_id for t in transcripts)
    violations = [Violation(v, "missing", "no transcripts row") for v in video_ids if counts[v] == 0]
    violations += [Violation(v, "duplicate", f"{n} transcripts rows") for v, n in counts.items() if n > 1]
    violations += [Violation(v, "unknown_video", "transcript of a video that is not in the shard")
                   for v in counts if v not in set(video_ids)]
    return CheckOutcome.from_violations("one_transcript_per_video", len(video_ids), violations, "videos")


def check_asr_cues(cues: Sequence[Cue], transcripts: Sequence[Transcript]) -> CheckOutcome:
    """ASR cues are non-empty, ordered, inside their audio, and counted by their transcript row."""
    by_video = {t.video_id: t for t in transcripts}
    violations: list[Violation] = []
    per_video = Counter()
    for cue in cues:
        key = f"{cue.video_id}#{cue.cue_index}"
        if cue.source != CUE_SOURCE_ASR:
            violations.append(Violation(key, "wrong_source", f"source {cue.source!r} in part asr"))
            continue
        per_video[cue.video_id] += 1
        t = by_video.get(cue.video_id)
        if t is None or t.status != status.OK:
            violations.append(Violation(key, "orphan", "cue of a video without an ok transcript"))
            continue
        if not cue.text.strip():
            violations.append(Violation(key, "empty_text", "empty cue text"))
        if not (0 <= cue.start_s < cue.end_s <= t.duration_s + TIME_EPS_S):
            violations.append(Violation(key, "outside_audio", f"{cue.start_s:.2f}-{cue.end_s:.2f} s outside "
                                                              f"0-{t.duration_s:.2f} s of audio"))
    for t in transcripts:
        if t.status == status.OK and per_video[t.video_id] != t.n_cues:
            violations.append(Violation(t.video_id, "count_mismatch",
                                        f"row says {t.n_cues} cues, part asr holds {per_video[t.video_id]}"))
    return CheckOutcome.from_violations("asr_cues_valid", len(cues), violations, "cues")


def check_failed_share(transcripts: Sequence[Transcript], max_share: float = 0.2) -> CheckOutcome:
    """Warning: more than `max_share` of the transcribed videos failed (audio that does not decode)."""
    tried = [t for t in transcripts if t.status in (status.OK, status.NO_SPEECH, status.FAILED)]
    failed = [t for t in tried if t.status == status.FAILED]
    share = len(failed) / len(tried) if tried else 0.0
    violations = [Violation(t.video_id, "failed", t.reason or "") for t in failed] if share > max_share else []
    return CheckOutcome.from_violations("transcripts_mostly_succeed", len(tried), violations, "videos",
                                        stats={"failed_share": round(share, 3), "max_share": max_share})
