"""The four export formats written from a real shard and read back with the readers training code uses:
Panda-70M's CSV conventions, the `webdataset` package (+ PyAV on one clip), Hugging Face `datasets` and
DuckDB on Parquet, plain JSON on JSONL."""

from __future__ import annotations

import ast
import csv
import datetime as dt
import io
import json

import pytest

from panda_dagster.lib.export.base import ExportOptions, WebDatasetOptions
from panda_dagster.lib.export.run import export_dataset

ALL_FORMATS = ["panda70m-csv", "webdataset", "parquet", "jsonl"]


def panda_seconds(timecode: str) -> float:
    """How Panda-70M's own downloader reads a timecode (video2dataset clipping subsampler)."""
    t = dt.datetime.strptime(timecode, "%H:%M:%S.%f").time()
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


@pytest.fixture(scope="module")
def exported(built_shard, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "all"
    result = export_dataset(built_shard.catalog(), ExportOptions(formats=ALL_FORMATS, out_dir=str(out)))
    return built_shard, out, result


def test_every_selected_clip_is_exported_with_its_flag(exported):
    built, out, result = exported
    catalog = built.catalog()
    selected = {s.clip_id: s for s in catalog.rows("selected_captions", built.shard)}
    assert len({s.video_id for s in selected.values()}) == 2 and len(selected) >= 3
    assert {r.clip_id for r in result.selection.rows} == set(selected)
    assert {o.format: o.n_rows for o in result.outputs} == {f: len(selected) for f in ALL_FORMATS}
    for row in result.selection.rows:
        assert row.accepted == selected[row.clip_id].accepted and row.caption == selected[row.clip_id].caption
    assert sorted(p.name for p in out.iterdir()) == ["DATASET_CARD.md", "clips.jsonl", "export.json",
                                                      "panda70m.csv", "parquet", "webdataset"]


def test_panda70m_csv_parsed_with_panda_conventions_gives_catalog_spans(exported):
    built, out, _ = exported
    catalog = built.catalog()
    clips = {c.clip_id: c for c in catalog.rows("clips", built.shard)}
    selected = {s.clip_id: s for s in catalog.rows("selected_captions", built.shard)}
    raw = (out / "panda70m.csv").read_bytes()
    assert raw.startswith(b"videoID,url,timestamp,caption,matching_score,") and b"\r" not in raw
    with open(out / "panda70m.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len({c.video_id for c in clips.values()})  # one row per video
    seen = set()
    for row in rows:
        spans = ast.literal_eval(row["timestamp"])
        captions = ast.literal_eval(row["caption"])
        scores = ast.literal_eval(row["matching_score"])
        ids = ast.literal_eval(row["clip_id"])
        assert row["timestamp"].startswith("[['0:00:") and len(spans) == len(captions) == len(scores) == len(ids)
        assert all(isinstance(c, str) for c in captions) and all(isinstance(s, float) for s in scores)
        for (start, end), caption, score, clip_id in zip(spans, captions, scores, ids):
            clip = clips[clip_id]
            assert clip.video_id == row["videoID"]
            assert panda_seconds(start) == pytest.approx(round(clip.start_s, 3), abs=1e-6)
            assert panda_seconds(end) == pytest.approx(round(clip.end_s, 3), abs=1e-6)
            assert caption == selected[clip_id].caption
            assert score == pytest.approx(selected[clip_id].matching_score, abs=1e-4)
            seen.add(clip_id)
        starts = [panda_seconds(s) for s, _ in spans]
        assert starts == sorted(starts)
    assert seen == set(selected)
    # The subtitle caption holds a comma, double quotes and an apostrophe: still one Python literal.
    licenses = {r["videoID"]: r["license"] for r in rows}
    assert sorted(licenses.values()) == ["", "CC-BY-4.0"]


def test_webdataset_iterates_and_a_clip_decodes(exported):
    import av
    import webdataset as wds

    built, out, _ = exported
    catalog = built.catalog()
    selected = {s.clip_id: s for s in catalog.rows("selected_captions", built.shard)}
    videos = {v.video_id: v for v in catalog.rows("videos", built.shard)}
    clips = {c.clip_id: c for c in catalog.rows("clips", built.shard)}
    urls = sorted(str(p) for p in (out / "webdataset").rglob("*.tar"))
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    assert {s["__key__"] for s in samples} == set(selected)
    for sample in samples:
        record = json.loads(sample["json"])
        clip_id = sample["__key__"]
        assert record["clip_id"] == clip_id and sample["txt"].decode() == selected[clip_id].caption
        assert record["source"]["sha256"] == videos[record["video_id"]].probe.sha256
        assert record["span"]["start_s"] == pytest.approx(clips[clip_id].start_s, abs=1e-6)
        assert record["candidates"] and all(c["model_id"] and c["revision"] for c in record["candidates"])
        assert sum(c["selected"] for c in record["candidates"]) == 1
        assert record["file"]["cut_mode"] == "copy"
    sample = samples[0]
    record = json.loads(sample["json"])
    with av.open(io.BytesIO(sample["mp4"])) as container:
        stream = container.streams.video[0]
        frames = [f for f in container.decode(stream)]
        fps = float(stream.average_rate)
    assert frames and frames[0].width == record["source"]["width"]
    held = record["file"]["end_s"] - record["file"]["start_s"]
    assert record["span"]["start_s"] - 1e-3 <= record["file"]["start_s"] < record["span"]["end_s"]
    assert abs(len(frames) - held * fps) <= 3  # the file holds the span it says it holds


def test_parquet_loads_with_datasets_and_duckdb(exported, tmp_path, monkeypatch):
    import datasets
    import duckdb

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    built, out, _ = exported
    n_selected = len(built.catalog().rows("selected_captions", built.shard))
    files = sorted((out / "parquet").glob("*.parquet"))
    assert [f.stem for f in files] == [built.shard]  # one file per catalog shard
    ds = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert len(ds) == n_selected
    first = ds[0]
    assert first["shard"] == built.shard and first["candidates"][0]["model_id"]
    assert isinstance(first["timestamp"], list) and first["timestamp"][0].startswith("0:00:")
    con = duckdb.connect()
    count, distinct, licensed = con.execute(
        f"SELECT count(*), count(DISTINCT clip_id), count(*) FILTER (WHERE license = 'CC-BY-4.0') "
        f"FROM read_parquet('{out / 'parquet' / '*.parquet'}')").fetchone()
    assert count == distinct == n_selected and 0 < licensed < n_selected
    n_teachers = con.execute(f"SELECT count(*) FROM (SELECT unnest(candidates) AS c "
                            f"FROM read_parquet('{files[0]}'))").fetchone()[0]
    assert n_teachers == len(built.catalog().rows("teacher_captions", built.shard))


def test_jsonl_holds_the_webdataset_records(exported):
    import webdataset as wds

    _, out, _ = exported
    lines = [json.loads(line) for line in (out / "clips.jsonl").read_text().splitlines()]
    urls = sorted(str(p) for p in (out / "webdataset").rglob("*.tar"))
    by_key = {s["__key__"]: json.loads(s["json"]) for s in wds.WebDataset(urls, shardshuffle=False)}
    assert len(lines) == len(by_key)
    for line in lines:
        tar_record = by_key[line["key"]]
        assert set(line) == set(tar_record)
        assert {k: v for k, v in line.items() if k != "file"} == {k: v for k, v in tar_record.items() if k != "file"}
    narration = [line for line in lines if line["subtitles"]]
    assert narration and narration[0]["subtitles"][0]["text"].startswith("a person says hello")


def test_dataset_card_says_what_made_it(exported):
    built, out, result = exported
    card = (out / "DATASET_CARD.md").read_text()
    assert "WARNING: TINY MODELS" in card and result.tiny_models
    assert "CC-BY-4.0" in card and "unknown" in card  # one video has a licence sidecar, one has none
    for teacher in {c.teacher for r in result.selection.rows for c in r.candidates}:
        assert f"| {teacher} |" in card  # win-rate table
    assert "tiny/" in card and '"formats": [' in card  # model ids and the exact config
    assert f"| clips | {len(result.selection.rows)} |" in card
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["n_clips"] == len(result.selection.rows) and set(manifest["formats"]) == set(ALL_FORMATS)


def test_webdataset_shard_size_and_buckets(built_shard, tmp_path):
    rows = len(built_shard.catalog().rows("selected_captions", built_shard.shard))
    by_count = export_dataset(built_shard.catalog(), ExportOptions(
        formats=["webdataset"], out_dir=str(tmp_path / "by_count"),
        webdataset=WebDatasetOptions(samples_per_shard=3)))
    assert len(by_count.outputs[0].files) == -(-rows // 3)
    by_bytes = export_dataset(built_shard.catalog(), ExportOptions(
        formats=["webdataset"], out_dir=str(tmp_path / "by_bytes"),
        webdataset=WebDatasetOptions(max_shard_bytes=1)))
    assert len(by_bytes.outputs[0].files) == rows  # every sample alone past the byte limit
    bucketed = export_dataset(built_shard.catalog(), ExportOptions(
        formats=["webdataset"], out_dir=str(tmp_path / "buckets"),
        webdataset=WebDatasetOptions(bucket_by=["resolution", "aspect", "duration"], cut_mode="reencode")))
    folders = {f.split("/")[1] for f in bucketed.outputs[0].files}
    durations = [r.duration_s for r in bucketed.selection.rows]
    expected = {"180p_16x9_" + ("2-5s" if d < 5 else "5-10s" if d < 10 else "10-20s") for d in durations}
    assert folders == expected and all(d >= 2 for d in durations)  # 320x180 clips of 2-10 s
    assert bucketed.outputs[0].n_rows == rows
