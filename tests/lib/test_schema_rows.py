"""Typed catalog I/O: every table declared in lib/schema.py, rows back as their dataclass."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.ids import clip_id
from panda_dagster.lib.probe import ProbeResult, probe_video
from panda_dagster.lib.records import CUE_SOURCE_ASR, CUE_SOURCE_SUBTITLE, Cue, QuarantineRecord, VideoRecord
from panda_dagster.lib.schema import TABLES
from panda_dagster.lib.selection.records import CaptionPreference
from panda_dagster.lib.subtitles import cues_by_video, parse_subtitles
from panda_dagster.fixtures.synth import Scene, render_video
from panda_dagster.lib.video.records import ClipRecord

WHEN = dt.datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=dt.timezone.utc)


def _clip(shard: str, start: float, keyframes: list[str], narration: str | None) -> ClipRecord:
    return ClipRecord(clip_id(f"v-{shard}", start, start + 2), f"v-{shard}", shard, start, start + 2.0, int(start * 25),
                      int(start * 25) + 50, "shot", 1, "content", narration, keyframes, None, None, "test",
                      created_at=WHEN)


def test_rows_give_back_exactly_what_was_written(tmp_path):
    catalog = Catalog(tmp_path)
    clips = [_clip("s1", 0.0, ["s3://b/k0.jpg", "s3://b/k1.jpg"], "hello there"), _clip("s1", 2.0, [], None)]
    catalog.replace_shard("clips", "s1", clips)
    catalog.replace_shard("clips", "s2", [_clip("s2", 4.0, ["/k.jpg"], None)])
    rows = catalog.rows("clips", "s1")
    assert rows == clips
    assert all(type(r) is ClipRecord for r in rows)
    assert rows[0].keyframe_uris == ["s3://b/k0.jpg", "s3://b/k1.jpg"] and rows[1].keyframe_uris == []
    assert rows[1].narration is None and rows[1].split_quality is None and rows[0].created_at == WHEN
    assert catalog.rows("clips", "no-such-shard") == []

    label = CaptionPreference("l1", "s1", "batch-1", "c1", "v1", None, None, True, ["a", "b"], ["t1", "t2"],
                              ["/k.jpg"], "ann", "labels.csv", None, imported_at=WHEN)
    catalog.replace_shard("caption_preferences", "s1", [label], part="batch-1")
    assert catalog.rows("caption_preferences", "s1") == [label]


def test_undeclared_tables_fail_loudly(tmp_path):
    catalog = Catalog(tmp_path)
    for read in (catalog.rows, catalog.read_shard):
        with pytest.raises(KeyError, match="not declared in panda_dagster/lib/schema.py"):
            read("no_such_table", "s1")
    with pytest.raises(KeyError, match="not declared"):
        catalog.replace_shard("no_such_table", "s1", [])
    with pytest.raises(TypeError, match="expects ClipRecord"):
        catalog.replace_shard("clips", "s1", [QuarantineRecord("s1", "/x", "clips", "bad")])
    # every declared table has a view, before any shard is written
    assert set(catalog.query("SELECT view_name FROM duckdb_views() WHERE NOT internal")["view_name"]) >= set(TABLES)


def test_one_cue_type_round_trips_with_both_sources(tmp_path):
    """The parser's cues become `subtitles` rows (part `subtitle`); ASR cues of the same type land in
    part `asr`; each part is replaced on its own and readers get the one type back."""
    parsed = parse_subtitles("1\n00:00:00,500 --> 00:00:02,000\nfirst line\n\n2\n00:00:02,500 --> 00:00:04,000\nsecond\n",
                             inline=True)
    assert all(type(c) is Cue for c in parsed.cues)
    subs = [dataclasses.replace(c, video_id="talk", shard="s1", cue_index=i, origin="inline")
            for i, c in enumerate(parsed.cues)]
    asr = [Cue(0.4, 2.1, "first line", "talk", "s1", 0, CUE_SOURCE_ASR, "tiny/whisper"),
           Cue(0.0, 3.0, "only speech here", "mute", "s1", 0, CUE_SOURCE_ASR, "tiny/whisper")]
    catalog = Catalog(tmp_path)
    catalog.replace_shard("subtitles", "s1", subs, part=CUE_SOURCE_SUBTITLE)
    catalog.replace_shard("subtitles", "s1", asr, part=CUE_SOURCE_ASR)
    with pytest.raises(ValueError, match="source"):
        catalog.replace_shard("subtitles", "s1", subs, part=CUE_SOURCE_ASR)
    rows = catalog.rows("subtitles", "s1")
    assert sorted(rows, key=lambda c: (c.source, c.video_id)) == sorted(asr + subs, key=lambda c: (c.source, c.video_id))
    by_source = catalog.query("SELECT source, count(*) AS n FROM subtitles GROUP BY source ORDER BY source")
    assert by_source.to_dict("records") == [{"source": "asr", "n": 2}, {"source": "subtitle", "n": 2}]
    # a video with subtitles reads its subtitles; one without falls back to its ASR cues
    grouped = cues_by_video(rows)
    assert [c.text for c in grouped["talk"]] == ["first line", "second"]
    assert [c.source for c in grouped["mute"]] == [CUE_SOURCE_ASR]
    catalog.replace_shard("subtitles", "s1", [], part=CUE_SOURCE_ASR)  # re-transcribing replaces only ASR
    assert catalog.rows("subtitles", "s1") == subs


def test_video_record_holds_the_probe_and_sql_sees_flat_columns(tmp_path):
    path = render_video(tmp_path / "v.mp4", [Scene(duration_s=1.2)], fps=25, size=(64, 48)).path
    probe = probe_video(path)
    video = VideoRecord("v", "s1", str(path), str(path), probe, "Title", None, None, None, 0, probed_at=WHEN)
    catalog = Catalog(tmp_path / "home")
    catalog.replace_shard("videos", "s1", [video])
    (back,) = catalog.rows("videos", "s1")
    assert back == video and isinstance(back.probe, ProbeResult) and back.probe.partial_reason is None
    sql = catalog.query("SELECT codec, duration_s, width, height, sha256, partial_reason FROM videos").iloc[0]
    assert (sql["codec"], sql["width"], sql["height"], sql["sha256"]) == ("h264", 64, 48, probe.sha256)
    assert sql["duration_s"] == pytest.approx(probe.duration_s) and sql["partial_reason"] is None
    assert "probe" not in catalog.read_shard("videos", "s1").columns


def test_a_table_that_gained_its_part_column_is_not_read_twice(tmp_path):
    """A catalog written before `subtitles` was split by source keeps `lake/subtitles/all/<shard>.parquet`;
    rewriting the shard in the new layout removes it, so no cue is read twice."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    catalog = Catalog(tmp_path)
    old = tmp_path / "lake" / "subtitles" / "all" / "s1.parquet"
    old.parent.mkdir(parents=True)
    pq.write_table(pa.table({"video_id": ["v"], "shard": ["s1"], "cue_index": [0], "start_s": [0.0], "end_s": [1.0],
                             "text": ["old"], "source": ["file"]}), old)
    (legacy,) = catalog.rows("subtitles", "s1")  # old files read with the new columns (as None)
    assert (legacy.text, legacy.source, legacy.origin) == ("old", "file", None)
    catalog.replace_shard("subtitles", "s1", [Cue(0.0, 1.0, "new", "v", "s1", origin="file")], part=CUE_SOURCE_SUBTITLE)
    assert [c.text for c in catalog.rows("subtitles", "s1")] == ["new"] and not old.exists()
