"""`panda calibrate-stitching FOLDER` end to end on a few real single-shot videos."""

from __future__ import annotations

import pytest

from panda_dagster.cli import main

SOURCES = ["mdn_flower.mp4", "tmh_VP9-tractor.webm", "tmh_bear-vp9-opus.webm", "intel_asl_book.mkv"]


@pytest.mark.slow
def test_calibrate_stitching_prints_values_and_writes_a_snippet(shared_videos, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in SOURCES:
        (folder / name).symlink_to(shared_videos / name)
    out = tmp_path / "stitching.yaml"
    assert main(["calibrate-stitching", str(folder), "--device", "cpu", "--max-s", "4", "--out", str(out),
                 "--work", str(tmp_path / "work")]) == 0
    printed = capsys.readouterr().out
    assert "stitch_dist" in printed and "composition cuts:" in printed and "composition gradual:" in printed
    snippet = out.read_text()
    values = dict(line.strip().split(": ") for line in snippet.splitlines() if line.startswith("      "))
    assert set(values) == {"transition_dist", "stitch_dist", "still_dist", "redundant_dist"}
    stitch, transition = float(values["stitch_dist"]), float(values["transition_dist"])
    assert 0 < stitch <= transition < 2
    assert "purity 1.000" in printed.split("composition cuts:")[1].splitlines()[0]  # no clip spans two sources


def test_calibrate_stitching_needs_three_videos(tmp_path, capsys):
    assert main(["calibrate-stitching", str(tmp_path)]) != 0
    assert "need at least 3 single-shot videos" in capsys.readouterr().err
