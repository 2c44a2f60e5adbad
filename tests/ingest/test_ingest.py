from __future__ import annotations

import json

import pandas as pd
import pytest

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.ingest import IngestError, ingest_source, load_manifest, read_source
from panda_dagster.lib.storage import LocalStorage


@pytest.fixture
def home(tmp_path):
    return Catalog(tmp_path / "home"), LocalStorage(tmp_path / "home" / "artifacts")


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folder_scan_with_sidecars_and_reingest(tmp_path, home):
    catalog, storage = home
    src = tmp_path / "src"
    _touch(src / "a.mp4")
    _touch(src / "a.srt", b"1\n00:00:00,000 --> 00:00:01,000\nhi\n")
    _touch(src / "a.json", json.dumps({"title": "A title", "description": "About A", "channel": "c1"}).encode())
    _touch(src / "nested" / "deeper" / "b.webm")
    _touch(src / "nested" / "b.vtt", b"WEBVTT\n")  # not beside b.webm: not its subtitles
    _touch(src / "c.MKV")
    _touch(src / "notes.txt")
    _touch(src / ".hidden" / "d.mp4")
    (src / "x.mp4").mkdir()  # a folder named like a video

    plan = ingest_source(src, catalog, storage, shard_size=2, prefix="demo")
    assert plan.keys == ["demo-00001", "demo-00002"]
    entries = [e for k in plan.keys for e in load_manifest(storage, k)]
    by_name = {e.uri.rsplit("/", 1)[-1]: e for e in entries}
    assert sorted(by_name) == ["a.mp4", "b.webm", "c.MKV", "x.mp4"]
    a = by_name["a.mp4"]
    assert (a.title, a.description, a.metadata) == ("A title", "About A", {"channel": "c1"})
    assert a.subtitles_uri == str(src / "a.srt")
    assert by_name["b.webm"].subtitles_uri is None
    assert "directory" in by_name["x.mp4"].ingest_error
    assert len({e.video_id for e in entries}) == 4

    again = ingest_source(src, catalog, storage, shard_size=2, prefix="demo")
    assert again.keys == [] and again.skipped_existing == 4
    _touch(src / "new.mp4")
    more = ingest_source(src, catalog, storage, shard_size=2, prefix="demo")
    assert more.keys == ["demo-00003"]
    assert [e.uri for e in load_manifest(storage, "demo-00003")] == [str(src / "new.mp4")]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_manifest_formats_relative_paths_urls_inline_subtitles_and_duplicates(tmp_path, home, fmt):
    catalog, storage = home
    rows = [
        {"path": "videos/one.mp4", "video_id": "one", "title": "One", "subtitles": "one.srt",
         "references": json.dumps(["a cat", "a small cat"])},
        {"path": "https://example.org/media/two.mp4?x=1", "title": "Two",
         "subtitles": "1\n00:00:00,000 --> 00:00:02,000\nhello there\n", "url": "https://example.org/two"},
        {"path": "s3://bucket/three.mp4", "description": "Three"},
        {"path": "videos/one.mp4", "video_id": "one", "title": "dup"},
    ]
    manifest = tmp_path / f"m.{fmt}"
    df = pd.DataFrame(rows)
    if fmt == "csv":
        df.to_csv(manifest, index=False)
    elif fmt == "jsonl":
        df.to_json(manifest, orient="records", lines=True)
    else:
        df.to_parquet(manifest)
    plan = ingest_source(manifest, catalog, storage, shard_size=10, prefix="m")
    (entries,) = plan.shards.values()
    one, two, three, dup = entries
    assert one.uri == str(tmp_path / "videos" / "one.mp4") and one.video_id == "one"
    assert one.subtitles_uri == str(tmp_path / "one.srt") and one.references == ["a cat", "a small cat"]
    assert two.uri.startswith("https://") and two.subtitles_text.startswith("1\n") and two.subtitles_uri is None
    assert two.video_id.startswith("two-") and two.url == "https://example.org/two"
    assert three.uri == "s3://bucket/three.mp4" and three.video_id.startswith("three-")
    assert dup.ingest_error and "duplicate of row 1" in dup.ingest_error
    assert catalog.query("SELECT count(*) AS n FROM ingested")["n"][0] == 3
    assert ingest_source(manifest, catalog, storage, shard_size=10, prefix="m").keys == []


def test_manifest_errors_are_clear(tmp_path, home):
    catalog, storage = home
    bad = tmp_path / "bad.csv"
    bad.write_text("video,title\na.mp4,A\n")
    with pytest.raises(IngestError, match=r"no `path` column \(columns: video, title\)"):
        read_source(bad)
    with pytest.raises(IngestError, match="no such file"):
        read_source(tmp_path / "missing.csv")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"path": "a.mp4"}\n{oops\n')
    with pytest.raises(IngestError, match="line 2 is not valid JSON"):
        read_source(broken)
    other = tmp_path / "list.txt"
    other.write_text("a.mp4\n")
    with pytest.raises(IngestError, match="unsupported manifest type"):
        read_source(other)
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match="no video files"):
        read_source(tmp_path / "empty")
    ok = tmp_path / "ok.csv"
    ok.write_text("path\na.mp4\n")
    with pytest.raises(IngestError, match="shard-size"):
        ingest_source(ok, catalog, storage, shard_size=0)
