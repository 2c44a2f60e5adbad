"""The shard-level intake rule that raw_videos applies: one video per content (sha256)."""

from __future__ import annotations

from panda_dagster.lib.ingest import ManifestEntry
from panda_dagster.lib.intake import STAGE, IntakeResult, keep_unique_content
from panda_dagster.lib.probe import ProbeResult
from panda_dagster.lib.records import Cue, QuarantineRecord, VideoRecord


def _result(video_id: str, sha: str, n_cues: int = 1) -> IntakeResult:
    probe = ProbeResult("mp4", "h264", "yuv420p", 2.0, 25.0, 50, 64, 48, False, False, 0, None, 10, sha, 2.0, None)
    video = VideoRecord(video_id, "s1", f"/v/{video_id}.mp4", f"/v/{video_id}.mp4", probe, None, None, None, None, n_cues)
    cues = [Cue(0.0, 1.0, f"{video_id} says {i}", video_id, "s1", i, origin="file") for i in range(n_cues)]
    return IntakeResult(video, cues)


def test_same_bytes_under_two_names_keep_only_the_first():
    entries = [ManifestEntry(v, f"/v/{v}.mp4") for v in ("a", "b", "c", "bad")]
    bad = IntakeResult(quarantine=[QuarantineRecord("s1", "/v/bad.mp4", STAGE, "file is empty (0 bytes)", "bad")])
    intake = keep_unique_content("s1", entries, [_result("a", "1" * 64), _result("b", "2" * 64, 2),
                                                 _result("c", "1" * 64), bad])
    assert [v.video_id for v in intake.videos] == ["a", "b"] and intake.n_entries == 4
    assert [c.text for c in intake.cues] == ["a says 0", "b says 0", "b says 1"]  # c's cues go with c
    reasons = {q.video_id: q.reason for q in intake.quarantine}
    assert reasons == {"bad": "file is empty (0 bytes)", "c": "duplicate content: same bytes (sha256) as video a"}
    assert all(q.stage == STAGE and q.action == "dropped" for q in intake.quarantine)
