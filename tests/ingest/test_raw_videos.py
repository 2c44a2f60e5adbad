"""raw_videos on a shard mixing good videos with every kind of bad input (real decoding)."""

from __future__ import annotations

import json
import os
import subprocess

import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.ingest.assets import raw_videos
from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.ingest import ingest_source
from panda_dagster.lib.storage import LocalStorage
from panda_dagster.fixtures.synth import Scene, Transition, ffmpeg_exe, render_video


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Good videos (with subtitles) plus every kind of bad input named in the issue."""
    d = tmp_path_factory.mktemp("corpus")
    scenes = [Scene(1.5, seed=1, background="blue"), Scene(1.5, seed=2, background="yellow")]
    good = render_video(
        d / "good.mp4", scenes, [Transition("dissolve", 0.4)], subtitles=[(0.0, 1.0, "a shape moves"), (1.2, 2.5, "now yellow")]
    )
    good2 = render_video(d / "good2.webm", [Scene(2.0, seed=3)], codec="libvpx-vp9", audio=True)
    with_bad_subs = render_video(d / "badsubs.mp4", [Scene(1.2, seed=4)], audio=False)
    (d / "badsubs.srt").write_bytes(b"\xff\xfe\x00\xd8garbage\x00\x00\x81\x8d" * 20)  # not text at all
    broken_ts = render_video(d / "brokents.mp4", [Scene(1.2, seed=5)], audio=False)
    (d / "brokents.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nok cue\n\n2\n00:00:xx --> soon\nbroken\n")
    (d / "zero.mp4").write_bytes(b"")
    (d / "truncated.mp4").write_bytes(good.path.read_bytes()[: good.path.stat().st_size // 2])
    (d / "random.mp4").write_bytes(os.urandom(50_000))
    (d / "text.mp4").write_text("this is not a video\n" * 100)
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=frequency=300:duration=2", "-y", str(d / "audio.m4a")],
        check=True,
    )
    (d / "x.mp4").mkdir()
    rows = [
        {"path": "good.mp4", "video_id": "good", "title": "Good one", "description": "desc", "subtitles": "good.srt"},
        {"path": "good2.webm", "video_id": "good2", "subtitles": "1\n00:00:00,000 --> 00:00:01,500\ninline words\n"},
        {"path": "badsubs.mp4", "video_id": "badsubs", "subtitles": "badsubs.srt"},
        {"path": "brokents.mp4", "video_id": "brokents", "subtitles": "brokents.srt"},
        {"path": "zero.mp4", "video_id": "zero"},
        {"path": "truncated.mp4", "video_id": "truncated"},
        {"path": "random.mp4", "video_id": "random"},
        {"path": "text.mp4", "video_id": "text"},
        {"path": "audio.m4a", "video_id": "audio"},
        {"path": "x.mp4", "video_id": "folder"},
        {"path": "missing.mp4", "video_id": "missing"},
        {"path": "http://127.0.0.1:9/nothing-listens-here.mp4", "video_id": "badurl"},
        {"path": "notascheme://what", "video_id": "badscheme"},
        {"path": "good.mp4", "video_id": "good", "title": "duplicate row"},
        {"path": "good2.webm", "video_id": "good2-copy"},  # same bytes, other id
    ]
    manifest = d / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return {"dir": d, "manifest": manifest, "good": good, "good2": good2, "broken_ts": broken_ts, "bad_subs": with_bad_subs}


def _materialize(home, shard):
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, [shard])
    return materialize([raw_videos], partition_key=shard, instance=instance, resources={"panda": PandaResource(home=str(home))})


def test_bad_inputs_are_quarantined_and_good_videos_land(panda_home, corpus):
    catalog, storage = Catalog(panda_home), LocalStorage(panda_home / "artifacts")
    (shard,) = ingest_source(corpus["manifest"], catalog, storage, shard_size=100, prefix="t").keys
    result = _materialize(panda_home, shard)
    assert result.success
    videos = catalog.query("SELECT * FROM videos ORDER BY video_id").set_index("video_id")
    assert list(videos.index) == ["badsubs", "brokents", "good", "good2"]
    good = videos.loc["good"]
    assert (good.codec, good.width, good.height, good.n_frames) == ("h264", 320, 180, corpus["good"].n_frames)
    assert good.fps == pytest.approx(25.0) and good.duration_s == pytest.approx(corpus["good"].duration_s, abs=0.05)
    assert (good.title, good.description, good.shard) == ("Good one", "desc", shard)
    assert videos.loc["good2"].codec == "vp9" and bool(videos.loc["good2"].has_audio)
    assert len(good.sha256) == 64 and good.size_bytes == corpus["good"].path.stat().st_size

    cues = catalog.query("SELECT video_id, text, source, origin FROM subtitles ORDER BY video_id, cue_index")
    assert cues.to_dict("records") == [
        {"video_id": "brokents", "text": "ok cue", "source": "subtitle", "origin": "file"},
        {"video_id": "good", "text": "a shape moves", "source": "subtitle", "origin": "file"},
        {"video_id": "good", "text": "now yellow", "source": "subtitle", "origin": "file"},
        {"video_id": "good2", "text": "inline words", "source": "subtitle", "origin": "inline"},
    ]

    q = catalog.query("SELECT video_id, stage, action, reason FROM quarantine").set_index("video_id")
    expected = {
        "zero": "empty",
        "truncated": "moov",
        "random": "",
        "text": "",
        "audio": "no video stream",
        "folder": "directory",
        "missing": "not found",
        "badurl": "could not download",
        "badscheme": "unsupported URL scheme",
        "good2-copy": "duplicate content",
        "badsubs": "subtitles",
        "brokents": "subtitles partly unusable",
    }
    for video_id, fragment in expected.items():
        reason = q.loc[video_id, "reason"]
        reason = reason if isinstance(reason, str) else " ".join(reason)
        assert fragment.lower() in reason.lower(), (video_id, reason)
    dup = q.loc["good"]
    assert "duplicate of row 1" in dup["reason"] and dup["action"] == "dropped"
    assert q.loc["badsubs", "action"] == "kept_partial" and q.loc["zero", "action"] == "dropped"
    assert set(q["stage"]) == {"raw_videos"}

    meta = result.asset_materializations_for_node("raw_videos")[0].metadata
    assert meta["n_videos"].value == 4 and meta["n_entries"].value == 15
    assert json.loads(json.dumps(meta["codecs"].value)) == {"h264": 3, "vp9": 1}

    # Idempotent: a second run replaces the shard's rows instead of adding to them.
    assert _materialize(panda_home, shard).success
    assert catalog.query("SELECT count(*) AS n FROM videos")["n"][0] == 4
    assert catalog.query("SELECT count(*) AS n FROM quarantine")["n"][0] == len(q)
