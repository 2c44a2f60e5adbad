"""Fixtures for the selection tests: generated coloured-shape clips written into a real catalog + storage."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.storage import LocalStorage


def _jpeg(frame: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="JPEG", quality=92)
    return out.getvalue()


@pytest.fixture
def single_torch_thread():
    """Run torch on one thread: this machine runs several test suites at once, and an oversubscribed
    second thread made the tiny model's training steps ~10x slower here."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_clip(panda_home):
    from panda_dagster.lib.models.openclip import load_open_clip

    return load_open_clip("tiny", device="cpu")


@pytest.fixture
def write_shape_shard(panda_home):
    """Factory: store generated shape clips as a shard (JPEG key frames, `clips`, `teacher_captions`).

    Candidate i of every clip is written by teacher `teacher_<i>`; the true caption's position is random,
    so no teacher is systematically right. Returns the ShapeClip list that was written."""
    from panda_dagster.lib.teachers.records import TeacherCaption
    from panda_dagster.lib.video.records import ClipRecord

    catalog, storage = Catalog(panda_home), LocalStorage(Path(panda_home) / "artifacts")

    def write(shard: str, shape_clips) -> list:
        clip_rows, caption_rows = [], []
        for clip in shape_clips:
            uris = [storage.put_bytes(f"shards/{shard}/keyframes/{clip.clip_id}_{i}.jpg", _jpeg(f))
                    for i, f in enumerate(clip.frames)]
            index = int(clip.clip_id.rsplit("-", 1)[-1])
            clip_rows.append(ClipRecord(
                clip_id=clip.clip_id, video_id=clip.video_id, shard=shard, start_s=index * 2.0,
                end_s=index * 2.0 + 2.0, start_frame=index * 50, end_frame=index * 50 + 50, method="shot",
                n_shots_merged=1, detector="content", narration=None, keyframe_uris=uris, clip_uri=None,
                split_quality=None, models_label="generated",
            ))
            for i, caption in enumerate(clip.candidates):
                caption_rows.append(TeacherCaption(
                    clip_id=clip.clip_id, shard=shard, video_id=clip.video_id, teacher=f"teacher_{i}",
                    kind="image", model_id=f"generated/teacher_{i}", revision="none", prompt_sha="none",
                    caption=caption, n_tokens=len(caption.split()), latency_ms=0.0, profile="tiny",
                ))
        catalog.replace_shard("clips", shard, clip_rows)
        catalog.replace_shard("teacher_captions", shard, caption_rows)
        return list(shape_clips)

    return write


@pytest.fixture
def run_assets(panda_home):
    """Factory: `run(assets, shard=None, run_config=None)` materializes `assets` on one Dagster instance per
    test (partition `shard`, or unpartitioned) with the selection and evaluation resources on CPU, asserts
    success and returns the first asset's metadata."""
    from dagster import DagsterInstance, materialize

    from panda_dagster.common.partitions import video_shards
    from panda_dagster.common.resources import PandaResource
    from panda_dagster.evaluation.resources import EvaluationModelsResource
    from panda_dagster.selection.resources import CaptionScorerResource

    instance = DagsterInstance.ephemeral()
    resources = {"panda": PandaResource(home=str(panda_home)), "caption_scorer": CaptionScorerResource(device="cpu"),
                 "evaluation_models": EvaluationModelsResource(device="cpu")}

    def run(assets, shard: str | None = None, run_config: dict | None = None):
        if shard is not None and not instance.has_dynamic_partition(video_shards.name, shard):
            instance.add_dynamic_partitions(video_shards.name, [shard])
        result = materialize(assets, partition_key=shard, instance=instance, resources=resources,
                             run_config=run_config)
        assert result.success
        return result.asset_materializations_for_node(assets[0].op.name)[0].metadata

    return run
