"""Hostile inputs, all generated here: each gives a correct row or a clear quarantine reason, nothing
crashes, and no other video of the shard is lost.

Videos: absurd declared resolution, 0 and 100000 fps headers, a 3-hour duration header on a 1-second
stream, paths with spaces, quotes, a newline and unicode, a symlink loop in the source folder, metadata
with SQL-looking text; a video of 1-frame shots through the splitter. Text: subtitles with overlapping,
negative and 10-hour times; captions with control characters or 10,000 words. Scale: a 100,000-row
manifest (benchmarks/ingest_scale.py measures time and memory at 10k vs 100k)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from panda_dagster.fixtures.synth import Scene, render_video
from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.ingest import ingest_source, load_manifest, read_source
from panda_dagster.lib.intake import intake_shard
from panda_dagster.lib.storage import LocalStorage

SQLISH = "Robert'); DROP TABLE videos; -- \" OR 1=1; /* \\' */ SELECT * FROM ingested"
ODD_NAMES = ["with space.mp4", "it's \"quoted\".mp4", "new\nline.mp4", "ünïcödé 视频 🎬.mp4"]


def _y4m(path: Path, header: str, frames: int = 3, w: int = 16, h: int = 16) -> Path:
    with open(path, "wb") as fh:
        fh.write(header.encode() + b"\n")
        for i in range(frames):
            fh.write(b"FRAME\n" + bytes([i * 40 % 256]) * (w * h * 3 // 2))
    return path


def _long_duration_header(source: Path, dest: Path, seconds: int = 3 * 3600) -> Path:
    """`source` with its mp4 header (mvhd, tkhd, mdhd) claiming `seconds` of video."""
    data = bytearray(source.read_bytes())
    mvhd = data.find(b"mvhd")
    assert data[mvhd + 4] == 0  # version-0 boxes: 32-bit fields
    movie_scale = struct.unpack(">I", data[mvhd + 16:mvhd + 20])[0]
    struct.pack_into(">I", data, mvhd + 20, movie_scale * seconds)
    tkhd = data.find(b"tkhd")
    struct.pack_into(">I", data, tkhd + 24, movie_scale * seconds)
    mdhd = data.find(b"mdhd")
    media_scale = struct.unpack(">I", data[mdhd + 16:mdhd + 20])[0]
    struct.pack_into(">I", data, mdhd + 20, media_scale * seconds)
    dest.write_bytes(bytes(data))
    return dest


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    render_video(folder / "normal.mp4", [Scene(0.8, seed=1)], audio=False)
    (folder / "normal.json").write_text(json.dumps({"title": SQLISH, "description": SQLISH, "tag": SQLISH}))
    for i, name in enumerate(ODD_NAMES):
        render_video(folder / name, [Scene(0.6, seed=20 + i)], audio=False)
    _y4m(folder / "huge.y4m", "YUV4MPEG2 W100000 H100000 F25:1 Ip A1:1 C420jpeg")
    _y4m(folder / "fps0.y4m", "YUV4MPEG2 W16 H16 F0:1 Ip A1:1 C420jpeg")
    _y4m(folder / "fps100k.y4m", "YUV4MPEG2 W16 H16 F100000:1 Ip A1:1 C420jpeg", frames=30)
    one_second = render_video(folder / ".src" / "one.mp4", [Scene(1.0, seed=5)], audio=False)
    _long_duration_header(one_second.path, folder / "three_hours.mp4")
    loop = folder / "loop"
    loop.mkdir()
    (loop / "again").symlink_to(folder, target_is_directory=True)  # folder/loop/again -> folder
    (loop / "self").symlink_to(loop, target_is_directory=True)
    return folder


def test_a_hostile_folder_gives_rows_or_clear_reasons_and_loses_nothing(hostile_folder, tmp_path):
    catalog = Catalog(tmp_path / "home")
    storage = LocalStorage(tmp_path / "home" / "artifacts")
    entries = read_source(hostile_folder)  # must terminate despite the symlink loop
    names = sorted(Path(e.uri).name for e in entries)
    assert names == sorted(["normal.mp4", *ODD_NAMES, "huge.y4m", "fps0.y4m", "fps100k.y4m", "three_hours.mp4"])
    (shard,) = ingest_source(hostile_folder, catalog, storage, shard_size=100).keys
    manifest = load_manifest(storage, shard)
    intake = intake_shard(shard, manifest, tmp_path / "cache", workers=2)
    catalog.replace_shard("videos", shard, intake.videos)
    by_name = {Path(v.uri).name: v for v in catalog.rows("videos", shard)}
    reasons = {Path(q.uri).name: q.reason for q in intake.quarantine}

    # Odd paths survive ingest, the manifest, probing and the catalog unchanged.
    for name in ODD_NAMES:
        assert name in by_name and Path(by_name[name].local_path).name == name
        assert by_name[name].probe.n_frames > 0
    # SQL-looking text is data: stored verbatim, and SQL over the catalog still works.
    normal = by_name["normal.mp4"]
    assert normal.title == SQLISH and normal.description == SQLISH and json.loads(normal.metadata_json)["tag"] == SQLISH
    found = catalog.query("SELECT title FROM videos WHERE title = ?", [SQLISH])
    assert list(found["title"]) == [SQLISH] and len(catalog.query("SELECT * FROM videos")) == len(by_name)
    # Broken headers: a clear reason each.
    assert "absurd resolution" in reasons["huge.y4m"]
    assert "implausible frame rate 100000 fps" in reasons["fps100k.y4m"]
    # A 0 fps header: the rate falls back to a sane value, the frames are all there.
    assert 1 <= by_name["fps0.y4m"].probe.fps <= 120 and by_name["fps0.y4m"].probe.n_frames == 3
    # The 3-hour header on a 1-second stream: the decoded length wins.
    assert abs(by_name["three_hours.mp4"].probe.duration_s - 1.0) < 0.1
    # Nothing lost: every entry is a video row or has a quarantine reason.
    assert set(by_name) | set(reasons) == set(names) and not (set(by_name) & set(reasons))


def test_subtitles_with_overlapping_negative_and_ten_hour_times(tmp_path):
    from panda_dagster.lib.subtitles import parse_subtitles

    srt = ("1\n00:00:00,000 --> 00:00:02,000\nfirst\n\n"
           "2\n00:00:01,000 --> 00:00:03,000\noverlaps the first\n\n"
           "3\n-00:00:05,000 --> 00:00:01,000\nnegative start\n\n"
           "4\n00:00:04,000 --> 00:00:03,500\nends before it starts\n\n"
           "5\n10:00:00,000 --> 10:00:02,000\nten hours in\n\n"
           "6\n00:00:05,000 --> 00:00:06,000\nlast good one\n")
    parsed = parse_subtitles(srt, inline=True)
    texts = [c.text for c in parsed.cues]
    assert "first" in texts and "overlaps the first" in texts and "last good one" in texts
    for cue in parsed.cues:
        assert 0 <= cue.start_s <= cue.end_s, cue
    assert "ends before it starts" not in texts  # dropped, and said so
    assert parsed.problems
    # A cue far beyond the video is kept as text; clips only use cues inside the video's time range.
    assert all(c.start_s < 10 * 3600 + 3 for c in parsed.cues)


def test_captions_with_control_characters_or_ten_thousand_words():
    from panda_dagster.lib.teachers.cleaning import clean_caption

    dirty = clean_caption("A dog\x00 runs\x07 across\x1b[31m the\u200b field.\r\n\x0c")
    assert dirty.caption is not None and dirty.caption.startswith("A dog")
    assert not any(ord(ch) < 32 and ch not in "\n" for ch in dirty.caption), repr(dirty.caption)
    long = clean_caption(" ".join(["word"] * 10_000) + ".")
    # Cut at a word boundary before 1000 characters, marked with " ...".
    assert long.caption is not None and len(long.caption) <= 1000 + len(" ...") and long.caption.endswith(" ...")


def test_thousands_of_one_frame_shots_split_without_crashing(tmp_path):
    import av

    from panda_dagster.lib.video.split import SplitConfig, split_video

    path = tmp_path / "strobe.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=50)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"g": "1"}  # every frame a key frame, every frame a new picture
        for _ in range(2000):
            colour = rng.integers(0, 256, size=3, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(np.broadcast_to(colour, (48, 64, 3)).copy(), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    config = SplitConfig()
    result = split_video(str(path), config)
    # Every frame decoded; the detector's minimum shot length turns the strobe into a few long shots
    # (which long-shot splitting then cuts) instead of 2000 one-frame clips.
    assert result.n_frames == 2000 and result.shots
    assert result.shots[0].start_frame == 0 and result.shots[-1].end_frame == 2000
    assert result.clips or result.no_clips_reason  # clips, or a clear reason why none
    for clip in result.clips:
        assert 0 <= clip.start_s < clip.end_s <= result.duration_s + 1e-6
    # 1-frame shots are never emitted as 1-frame clips: merged, or dropped with a reason.
    min_clip_s = getattr(config, "min_clip_s", None) or getattr(getattr(config, "limits", None), "min_clip_s", 0.0)
    assert all(c.end_s - c.start_s >= min_clip_s - 1e-6 for c in result.clips)
    assert all(d.reason for d in result.dropped)


@pytest.mark.slow
def test_a_100000_row_manifest_ingests_completely(tmp_path):
    manifest = tmp_path / "big.jsonl"
    with open(manifest, "w") as fh:
        for i in range(100_000):
            fh.write(json.dumps({"path": f"/data/v{i:06d}.mp4", "video_id": f"v{i:06d}", "title": SQLISH}) + "\n")
    catalog = Catalog(tmp_path / "home")
    plan = ingest_source(manifest, catalog, LocalStorage(tmp_path / "home" / "artifacts"), shard_size=1000)
    assert len(plan.keys) == 100
    counts = catalog.query("SELECT count(*) AS n, count(DISTINCT video_id) AS d FROM ingested")
    assert counts.to_dict("records") == [{"n": 100_000, "d": 100_000}]
    # Ingesting the same manifest again adds nothing.
    again = ingest_source(manifest, catalog, LocalStorage(tmp_path / "home" / "artifacts"), shard_size=1000)
    assert again.keys == [] and again.skipped_existing == 100_000
    assert os.path.getsize(manifest) > 0
