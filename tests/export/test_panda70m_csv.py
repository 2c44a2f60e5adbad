"""Panda-70M's metadata CSV conventions on their own: timecodes, Python list literals, and reading such a
CSV as an ingest manifest (good rows, bad rows, local paths and URLs)."""

from __future__ import annotations

import ast
import csv
import io

import pytest

from panda_dagster.lib.export.panda70m_csv import (
    GIVEN_SPANS_KEY,
    csv_text,
    is_panda70m_csv,
    panda_timecode,
    parse_timecode,
    parse_timestamps,
)
from panda_dagster.lib.export.rows import Candidate, DatasetRow, SourceVideo
from panda_dagster.lib.ingest import read_source


@pytest.mark.parametrize("seconds, text", [(0.0, "0:00:00.000"), (4.004, "0:00:04.004"),
                                           (59.9996, "0:01:00.000"), (3725.0416, "1:02:05.042"),
                                           (36000.5, "10:00:00.500")])
def test_timecodes_are_panda_h_mm_ss_mmm(seconds, text):
    assert panda_timecode(seconds) == text
    assert parse_timecode(text) == pytest.approx(round(seconds, 3))


def test_timestamp_cells_in_every_form_the_released_files_and_downloader_use():
    assert parse_timestamps("[['0:00:00.000', '0:00:05.005'], ['0:00:05.005', '0:00:13.180']]") == [
        (0.0, 5.005), (5.005, 13.18)]
    assert parse_timestamps("[('00:00:06.000', '00:00:54.000')]") == [(6.0, 54.0)]
    assert parse_timestamps("['0:00:01.5', '0:00:02.25']") == [(1.5, 2.25)]  # one bare pair
    assert parse_timestamps("[[1.0, 2.5]]") == [(1.0, 2.5)]  # seconds, as video2dataset also accepts
    for bad in ("not a list", "[['0:00:05.000', '0:00:01.000']]", "[['0:00:xx', '0:00:01.000']]", "[[1, 2, 3]]"):
        with pytest.raises(ValueError):
            parse_timestamps(bad)


def _row(clip_id: str, video_id: str, start: float, end: float, caption: str, score: float) -> DatasetRow:
    source = SourceVideo(video_id, f"/videos/{video_id}.mp4", None, "ab" * 32, "A, \"quoted\" title", None, None,
                         "CC0-1.0", 640, 360, 25.0, 20.0, "h264", "mp4", False)
    return DatasetRow(clip_id, "s-1", video_id, start, end, 0, 1, "stitched", "content", 1, None, None, [], None,
                      "none", caption, "blip", score, 0.1, True, None, 1, "scorer", None, "default",
                      [Candidate("blip", caption, selected=True)], source, None, [])


def test_csv_cells_are_python_literals_that_survive_quotes_and_commas():
    rows = [_row("c2", "v1", 5.5, 9.25, 'He said "hi", then left', 0.43216),
            _row("c1", "v1", 0.0, 5.5, "it's a dog, running", 0.5),
            _row("c3", "v0", 1.0, 2.0, "line\nbreak", 0.2)]
    text = csv_text(rows)
    assert text.splitlines()[0] == ("videoID,url,timestamp,caption,matching_score,clip_id,accepted,teacher,"
                                    "shard,title,page_url,license")
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [r["videoID"] for r in parsed] == ["v0", "v1"]  # one row per video, in a fixed order
    v1 = parsed[1]
    assert v1["timestamp"] == "[['0:00:00.000', '0:00:05.500'], ['0:00:05.500', '0:00:09.250']]"
    assert ast.literal_eval(v1["caption"]) == ["it's a dog, running", 'He said "hi", then left']
    assert v1["matching_score"] == "[0.5, 0.4322]" and ast.literal_eval(v1["accepted"]) == [True, True]
    assert ast.literal_eval(parsed[0]["caption"]) == ["line\nbreak"]
    assert v1["title"] == 'A, "quoted" title' and v1["license"] == "CC0-1.0"
    assert csv_text(list(reversed(rows))) == text  # input order does not matter


def test_a_panda70m_csv_is_an_ingest_manifest(tmp_path):
    (tmp_path / "clips").mkdir()
    video = tmp_path / "clips" / "local.mp4"
    video.write_bytes(b"not really a video: raw_videos judges that, not ingest")
    path = tmp_path / "panda70m_testing.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["videoID", "url", "timestamp", "caption", "matching_score", "license"])
        writer.writerow(["local", "clips/local.mp4", "[['0:00:00.000', '0:00:02.002'], ['0:00:02.002', '0:00:05.500']]",
                         "['a cat', 'a dog']", "[0.45, 0.41]", "CC-BY-4.0"])
        writer.writerow(["--0K6ZsM2Ak", "https://www.youtube.com/watch?v=--0K6ZsM2Ak",
                         "[['0:00:10.844', '0:00:13.146']]", "['a man talks']", "[0.4478]", ""])
        writer.writerow(["broken", "clips/local.mp4", "[['0:00:05.000', '0:00:01.000']]", "['x']", "[0.1]", ""])
    assert is_panda70m_csv(path)
    local, remote, broken = read_source(path)
    assert local.video_id == "local" and local.uri == str(video) and local.ingest_error is None
    assert local.metadata[GIVEN_SPANS_KEY] == [[0.0, 2.002], [2.002, 5.5]]
    assert local.metadata["given_captions"] == ["a cat", "a dog"] and local.metadata["license"] == "CC-BY-4.0"
    assert remote.uri == remote.url == "https://www.youtube.com/watch?v=--0K6ZsM2Ak"
    assert remote.metadata[GIVEN_SPANS_KEY] == [[10.844, 13.146]]
    assert broken.ingest_error and "row 3" in broken.ingest_error and "timestamp" in broken.ingest_error


def test_a_plain_manifest_is_not_mistaken_for_panda70m(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text("path,url,timestamp\nvideo.mp4,https://example.org/v,yesterday\n")
    assert not is_panda70m_csv(path)
