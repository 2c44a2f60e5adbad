"""What an export holds and how it is written: narrowing, exclusions, determinism, atomic replacement,
the CLI and the Dagster asset, and the Panda-70M CSV round trip through `panda ingest` and clips mode=given."""

from __future__ import annotations

import dataclasses
import json

import pytest

from panda_dagster.lib.export import registry
from panda_dagster.lib.export.base import ExportOptions, FormatOutput
from panda_dagster.lib.export.run import ExportError, export_dataset
from panda_dagster.lib.records import QuarantineRecord

DETERMINISTIC = ("panda70m.csv", "clips.jsonl")


def _bytes(out) -> dict[str, bytes]:
    files = [*DETERMINISTIC, *(f"parquet/{p.name}" for p in sorted((out / "parquet").glob("*.parquet")))]
    return {f: (out / f).read_bytes() for f in files}


def _siblings(out) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def test_re_export_is_byte_identical_and_replaces(built_shard, tmp_path):
    options = dict(formats=["panda70m-csv", "parquet", "jsonl"])
    out = tmp_path / "ds"
    export_dataset(built_shard.catalog(), ExportOptions(**options, out_dir=str(out)))
    first = _bytes(out)
    assert len(first) == 3
    export_dataset(built_shard.catalog(), ExportOptions(**options, out_dir=str(out)))
    other = tmp_path / "elsewhere"
    export_dataset(built_shard.catalog(), ExportOptions(**options, out_dir=str(other)))
    assert _bytes(out) == first and _bytes(other) == first
    # Re-exporting replaces the folder as a whole: a format not asked for again is gone.
    export_dataset(built_shard.catalog(), ExportOptions(formats=["jsonl"], out_dir=str(out)))
    assert not (out / "panda70m.csv").exists() and (out / "clips.jsonl").read_bytes() == first["clips.jsonl"]
    assert _siblings(out) == []


class _CrashingParquet:
    name = "parquet"

    def __init__(self, options, context=None):
        self.options = options

    def write(self, dataset_rows, out_dir) -> FormatOutput:
        (out_dir / "parquet").mkdir()
        (out_dir / "parquet" / "half.parquet").write_bytes(b"PAR1 half")
        raise RuntimeError("disk full (injected)")


def test_a_failed_export_leaves_the_previous_one_intact(built_shard, tmp_path, monkeypatch):
    out = tmp_path / "ds"
    options = ExportOptions(formats=["panda70m-csv", "jsonl", "parquet"], out_dir=str(out))
    export_dataset(built_shard.catalog(), options)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    monkeypatch.setitem(registry.EXPORTERS, "parquet", _CrashingParquet)
    with pytest.raises(RuntimeError, match="injected"):
        export_dataset(built_shard.catalog(), options)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and _siblings(out) == []


def test_an_interrupted_swap_is_recovered(built_shard, tmp_path):
    out = tmp_path / "ds"
    export_dataset(built_shard.catalog(), ExportOptions(formats=["jsonl"], out_dir=str(out)))
    out.rename(tmp_path / ".ds.old-deadbeef")  # a crash right after the first rename of a swap
    result = export_dataset(built_shard.catalog(), ExportOptions(formats=["panda70m-csv"], out_dir=str(out)))
    assert (out / "panda70m.csv").is_file() and not (out / "clips.jsonl").exists()
    assert _siblings(out) == [] and result.out_dir == out


def test_refuses_to_replace_a_folder_that_is_not_an_export(built_shard, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an earlier export"):
        export_dataset(built_shard.catalog(), ExportOptions(formats=["jsonl"], out_dir=str(out)))
    assert (out / "notes.txt").read_text() == "keep me"


@pytest.fixture
def edited_home(built_shard, tmp_path):
    """A copy of the built shard whose selection accepts every other clip (tiny scores pass no bar)."""
    from panda_dagster.lib.catalog import Catalog

    home = built_shard.copy_home(tmp_path / "home")
    catalog = Catalog(home)
    rows = sorted(catalog.rows("selected_captions", built_shard.shard), key=lambda r: r.clip_id)
    rows = [dataclasses.replace(r, accepted=i % 2 == 0, reject_reason=None if i % 2 == 0 else "below_quality_bar")
            for i, r in enumerate(rows)]
    catalog.replace_shard("selected_captions", built_shard.shard, rows)
    return catalog, rows


def test_accepted_only_and_min_score_narrow(edited_home, built_shard, tmp_path):
    catalog, rows = edited_home
    everything = export_dataset(catalog, ExportOptions(formats=["jsonl"], out_dir=str(tmp_path / "all")))
    assert len(everything.selection.rows) == len(rows)
    accepted = export_dataset(catalog, ExportOptions(formats=["jsonl"], out_dir=str(tmp_path / "acc"),
                                                     accepted_only=True))
    assert {r.clip_id for r in accepted.selection.rows} == {r.clip_id for r in rows if r.accepted}
    lines = (tmp_path / "acc" / "clips.jsonl").read_text().splitlines()
    assert len(lines) == len(accepted.selection.rows) and all(json.loads(x)["accepted"] for x in lines)
    bar = sorted(r.matching_score for r in rows)[len(rows) // 2]
    scored = export_dataset(catalog, ExportOptions(formats=["panda70m-csv"], out_dir=str(tmp_path / "bar"),
                                                   min_score=bar))
    assert {r.clip_id for r in scored.selection.rows} == {r.clip_id for r in rows if r.matching_score >= bar}
    assert scored.selection.excluded == {f"matching_score below --min-score {bar}": len(rows) - len(scored.selection.rows)}
    card = (tmp_path / "acc" / "DATASET_CARD.md").read_text()
    assert "Holds: clips whose caption was accepted" in card and "100.0%" in card


def _filter_row(clip, keep: bool, sharpness: float):
    from panda_dagster.lib.filters.records import ClipFilterRecord

    values = {f.name: None for f in dataclasses.fields(ClipFilterRecord)
              if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    values.update(clip_id=clip.clip_id, video_id=clip.video_id, shard=clip.shard, keep=keep,
                  reasons=[] if keep else ["too_static"], duration_s=clip.end_s - clip.start_s,
                  sharpness=sharpness, phashes=[], filters=["motion", "sharpness"])
    return ClipFilterRecord(**values)


def test_quarantined_and_filtered_clips_are_never_exported(edited_home, built_shard, tmp_path):
    catalog, rows = edited_home
    shard = built_shard.shard
    clips = sorted(catalog.rows("clips", shard), key=lambda c: c.clip_id)
    dropped, quarantined, kept = clips[0], clips[1], clips[2:]
    catalog.replace_shard("clip_filters", shard,
                          [_filter_row(dropped, False, 1.0)] + [_filter_row(c, True, 50.0) for c in kept])
    catalog.replace_shard("quarantine", shard, [QuarantineRecord(
        shard, f"clip:{quarantined.clip_id}", "selected_captions", "frames unreadable (test)", quarantined.video_id)],
        part="selected_captions")
    # A second manifest row with the same video_id was dropped at raw_videos: the kept video stays.
    catalog.replace_shard("quarantine", shard, [QuarantineRecord(
        shard, "/elsewhere/copy.mp4", "raw_videos", "duplicate of row 1 (same video_id)", kept[0].video_id)],
        part="raw_videos")
    for accepted_only in (False, True):
        result = export_dataset(catalog, ExportOptions(formats=["jsonl", "parquet"], accepted_only=accepted_only,
                                                       out_dir=str(tmp_path / f"out{accepted_only}")))
        ids = {r.clip_id for r in result.selection.rows}
        assert dropped.clip_id not in ids and quarantined.clip_id not in ids
    result = export_dataset(catalog, ExportOptions(formats=["jsonl"], out_dir=str(tmp_path / "out")))
    assert {r.clip_id for r in result.selection.rows} == {c.clip_id for c in kept}
    assert result.selection.excluded == {"dropped by clip filters": 1, "quarantined": 1}
    record = json.loads((tmp_path / "out" / "clips.jsonl").read_text().splitlines()[0])
    assert record["filters"]["keep"] is True and record["filters"]["scores"]["sharpness"] == 50.0


def test_cli_export(built_shard, stages, tmp_path, monkeypatch, capsys, tiny_model_cache):
    from panda_dagster.cli import main

    stages.set_env(monkeypatch, built_shard.home, tiny_model_cache)
    out = tmp_path / "cli"
    assert main(["export", "--format", "panda70m-csv,jsonl", "--format", "webdataset", "--out", str(out),
                 "--shards", built_shard.shard, "--bucket-by", "duration", "--samples-per-shard", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out) and "TINY" in captured.err
    assert (out / "panda70m.csv").is_file() and list((out / "webdataset").glob("*/000000.tar"))
    assert main(["export", "--format", "jsonl", "--out", str(out), "--shards", "nope"]) == 2
    assert "no selected captions for shard(s) nope" in capsys.readouterr().err
    assert main(["export", "--format", "hdf5", "--out", str(out)]) == 2
    assert "unknown export format" in capsys.readouterr().err
    assert (out / "panda70m.csv").is_file()  # the failed commands left the export alone


def test_dataset_export_asset(built_shard, tmp_path):
    from dagster import materialize

    from panda_dagster.common.resources import PandaResource
    from panda_dagster.export.assets import dataset_export

    out = tmp_path / "asset"
    result = materialize([dataset_export], resources={"panda": PandaResource(home=str(built_shard.home))},
                         run_config={"ops": {"dataset_export": {"config": {
                             "formats": ["panda70m-csv", "parquet"], "out_dir": str(out),
                             "webdataset": {"cut_mode": "reencode"}}}}})
    assert result.success
    metadata = result.asset_materializations_for_node("dataset_export")[0].metadata
    n_selected = len(built_shard.catalog().rows("selected_captions", built_shard.shard))
    assert metadata["n_clips"].value == n_selected == metadata["n_rows.parquet"].value
    assert metadata["bytes.panda70m-csv"].value == (out / "panda70m.csv").stat().st_size
    assert metadata["out_dir"].value == str(out) and metadata["tiny_models"].value is True
    assert "caption" in metadata["preview"].value
    bad = materialize([dataset_export], resources={"panda": PandaResource(home=str(built_shard.home))},
                      run_config={"ops": {"dataset_export": {"config": {"formats": ["mp3"], "out_dir": str(out)}}}},
                      raise_on_error=False)
    assert not bad.success and (out / "panda70m.csv").is_file()


def test_panda70m_csv_round_trip_gives_the_same_spans(built_shard, stages, tmp_path, monkeypatch, tiny_model_cache):
    """Export as Panda-70M CSV, ingest that CSV into a new home, split with clips mode=given: same spans
    (and so the same clip ids), the old captions kept beside them for re-captioning."""
    from panda_dagster.lib.catalog import Catalog

    out = tmp_path / "csv"
    export_dataset(built_shard.catalog(), ExportOptions(formats=["panda70m-csv"], out_dir=str(out)))
    home = tmp_path / "recaption_home"
    home.mkdir()
    stages.set_env(monkeypatch, home, tiny_model_cache)
    shard = stages.run(home, out / "panda70m.csv", "rt", "clips", {"ops": {"clips": {"config": {"mode": "given"}}}})
    original = built_shard.catalog()
    exported_ids = {r.clip_id for r in original.rows("selected_captions", built_shard.shard)}
    before = {c.clip_id: (c.video_id, c.start_s, c.end_s, c.start_frame, c.end_frame)
              for c in original.rows("clips", built_shard.shard) if c.clip_id in exported_ids}
    again = Catalog(home).rows("clips", shard)
    assert {c.method for c in again} == {"given"}
    after = {c.clip_id: (c.video_id, c.start_s, c.end_s, c.start_frame, c.end_frame) for c in again}
    assert after.keys() == before.keys()
    for clip_id, (video, start, end, first, last) in after.items():
        assert before[clip_id][0] == video and (first, last) == before[clip_id][3:]
        assert start == pytest.approx(before[clip_id][1], abs=1e-9) and end == pytest.approx(before[clip_id][2], abs=1e-9)
    videos = Catalog(home).rows("videos", shard)
    metadata = json.loads(videos[0].metadata_json)
    assert metadata["given_spans"] and len(metadata["given_captions"]) == len(metadata["given_spans"])
