"""Acceptance of the foundation: every real sample video lands in `videos`, none in quarantine."""

from __future__ import annotations

import csv

import pytest
from dagster import DagsterInstance, materialize

from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.ingest.assets import raw_videos
from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.ingest import ingest_source
from panda_dagster.lib.storage import LocalStorage


@pytest.mark.shared_videos
def test_all_shared_videos_are_probed_without_quarantine(panda_home, shared_videos):
    catalog = Catalog(panda_home)
    plan = ingest_source(shared_videos, catalog, LocalStorage(panda_home / "artifacts"), shard_size=8, prefix="shard")
    with open(shared_videos / "MANIFEST.tsv") as fh:
        manifest = {row["filename"]: row for row in csv.DictReader(fh, delimiter="\t")}
    assert plan.keys == ["shard-00001", "shard-00002", "shard-00003"]

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, plan.keys)
    for key in plan.keys:
        result = materialize([raw_videos], partition_key=key, instance=instance, resources={"panda": PandaResource()})
        assert result.success

    assert catalog.query("SELECT count(*) AS n FROM quarantine")["n"][0] == 0
    videos = catalog.query("SELECT * FROM videos")
    videos["filename"] = videos["uri"].str.rsplit("/", n=1).str[-1]
    assert sorted(videos["filename"]) == sorted(manifest)
    for row in videos.itertuples():
        expected = manifest[row.filename]
        width, height = map(int, expected["resolution"].split("x"))
        assert (row.width, row.height) == (width, height), row.filename
        assert row.fps == pytest.approx(float(expected["fps"]), rel=0.002), row.filename
        assert row.duration_s == pytest.approx(float(expected["duration_s"]), abs=0.1), row.filename
        assert row.codec == expected["codec"].split("/")[0].split(" ")[0], row.filename
        assert row.has_audio == ("no audio" not in expected["codec"]), row.filename
        assert row.size_bytes == int(expected["size_bytes"]) and row.decodable_s > 0.95 * row.duration_s
    assert set(videos["codec"]) >= {"h264", "vp8", "vp9", "av1", "mjpeg", "mpeg4"}
    assert videos.set_index("filename").loc["mdn_friday.mp4", "n_subtitle_cues"] == 5
