"""Fine-tuning the scorer on human choices: the whole loop through catalog, label page and CSV import."""

from __future__ import annotations

import csv
import json
import re

import pytest

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.selection.finetune import (
    FinetuneConfig,
    PreferenceExample,
    finetune_scorer,
    labels_fingerprint,
    latest_selection_model,
    list_selection_models,
    load_selection_scorer,
    publish_selection_model,
    selection_accuracy,
    split_by_video,
)
from panda_dagster.lib.selection.inputs import load_preference_examples, load_shard_clips
from panda_dagster.lib.selection.labels import CSV_COLUMNS, export_label_page, import_labels, sample_for_labelling
from panda_dagster.lib.selection.scorer import storage_frames_loader
from panda_dagster.lib.storage import artifact_reader
from panda_dagster.lib.selection.synthetic import make_shape_preferences
from panda_dagster.lib.storage import LocalStorage


def test_split_by_video_keeps_videos_whole():
    examples = [PreferenceExample(f"c{i}", f"v{i % 7}", ["a", "b"], i % 2) for i in range(40)]
    train, val = split_by_video(examples, 0.3, seed=1)
    assert len(train) + len(val) == 40 and train and val
    assert not {e.video_id for e in train} & {e.video_id for e in val}
    assert len({e.video_id for e in val}) == 2  # round(0.3 * 7)
    assert split_by_video(examples, 0.3, seed=1) == (train, val), "deterministic"
    one_video = [PreferenceExample("c", "v", ["a", "b"], 0)]
    assert split_by_video(one_video, 0.3, 0) == (one_video, [])


def _page_data(path) -> dict:
    text = path.read_text()
    return json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S).group(1))


@pytest.mark.slow
def test_finetuning_on_human_choices_raises_selection_accuracy(panda_home, write_shape_shard, tiny_clip,
                                                               single_torch_thread, tmp_path):
    shard = "shard-00001"
    truth = {c.clip_id: c for c in write_shape_shard(shard, make_shape_preferences(n_videos=40, clips_per_video=5))}
    catalog, storage = Catalog(panda_home), LocalStorage(panda_home / "artifacts")

    # A person labels every clip on the exported page (teacher hidden); five clips get "all bad".
    clips = sample_for_labelling(load_shard_clips(catalog, shard), n=None, seed=0)
    page = export_label_page(clips, artifact_reader(storage), tmp_path / "label.html")
    data = _page_data(page.path)
    assert page.n_clips == len(truth) == 200
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, CSV_COLUMNS)
        writer.writeheader()
        for n, item in enumerate(data["clips"]):
            clip = truth[item["clip_id"]]
            right = clip.candidates[clip.chosen_index]
            choice = data["all_bad"] if n < 5 else next(c["id"] for c in item["candidates"] if c["text"] == right)
            writer.writerow({"clip_id": item["clip_id"], "shard": shard, "video_id": item["video_id"],
                             "choice": choice, "all_bad": n < 5, "annotator": "tester", "page_id": data["page_id"]})
    imported = import_labels(catalog, tmp_path / "labels.csv")
    assert not imported.problems and len(imported.stored) == 200 and imported.n_all_bad == 5

    examples, n_all_bad = load_preference_examples(catalog)
    assert n_all_bad == 5 and len(examples) == 195
    assert all(e.candidates[e.chosen_index] == truth[e.clip_id].candidates[truth[e.clip_id].chosen_index]
               for e in examples)

    config = FinetuneConfig(epochs=8, batch_size=32, learning_rate=2e-3, warmup_fraction=0.1,
                            unlocked_image_groups=None, unlocked_text_layers=None, val_fraction=0.2, seed=0)
    loader = storage_frames_loader(storage)
    result = finetune_scorer(tiny_clip, examples, config, frames_loader=loader)
    print(f"selection accuracy on validation: base {result.base_val_accuracy:.3f}, "
          f"fine-tuned {result.tuned_val_accuracy:.3f}, chance {result.chance_val_accuracy:.3f}")
    assert result.n_val_clips >= 30 and result.n_train_clips + result.n_val_clips == 195
    assert result.chance_val_accuracy == pytest.approx(0.25)
    assert result.base_val_accuracy < 0.5
    assert result.tuned_val_accuracy >= 0.75
    assert result.tuned_val_accuracy >= result.base_val_accuracy + 0.35
    assert [h["epoch"] for h in result.history] == list(range(1, 9))
    _, val = split_by_video(examples, config.val_fraction, config.seed)
    assert selection_accuracy(tiny_clip, val, loader) == result.base_val_accuracy, "base model left untouched"

    # Versioned checkpoint: published, found as newest, loaded back with the same accuracy.
    info = publish_selection_model(storage, tiny_clip, result, labels_fingerprint(examples), len(examples))
    assert latest_selection_model(storage, "tiny").version == info.version
    assert latest_selection_model(storage, "default") is None
    scorer = load_selection_scorer(storage, info, device="cpu")
    assert scorer.version == info.version and scorer.name == f"selection_model {info.version}"
    assert selection_accuracy(scorer.model, val, loader) == pytest.approx(result.tuned_val_accuracy)
    assert list_selection_models(storage)[0].tuned_val_accuracy == result.tuned_val_accuracy
