"""The labelling page and label CSV import."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.selection.labels import (
    ALL_BAD,
    candidate_id,
    export_label_page,
    import_labels,
    read_label_csv,
    sample_for_labelling,
)
from panda_dagster.lib.selection.inputs import load_shard_clips
from panda_dagster.lib.selection.scorer import Candidate, ClipToScore
from panda_dagster.lib.storage import artifact_reader
from panda_dagster.lib.selection.synthetic import make_shape_preferences
from panda_dagster.lib.storage import LocalStorage

SHARD = "shard-00007"


@pytest.fixture
def shard(panda_home, write_shape_shard):
    clips = write_shape_shard(SHARD, make_shape_preferences(n_videos=3, clips_per_video=2, seed=11))
    return {c.clip_id: c for c in clips}


def _page(path) -> tuple[str, dict]:
    text = path.read_text()
    data = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S).group(1)
    return text, json.loads(data)


def test_label_page_is_self_contained_shuffled_and_hides_teachers(panda_home, shard, tmp_path):
    catalog, storage = Catalog(panda_home), LocalStorage(panda_home / "artifacts")
    clips = load_shard_clips(catalog, SHARD)
    chosen = sample_for_labelling(clips, n=4, seed=3)
    assert len(chosen) == 4 and len({c.clip_id for c in chosen}) == 4
    assert sample_for_labelling(clips, n=4, seed=3) == chosen
    assert sample_for_labelling(clips, n=None, exclude={chosen[0].clip_id}) and \
        chosen[0].clip_id not in {c.clip_id for c in sample_for_labelling(clips, None, exclude={chosen[0].clip_id})}

    page = export_label_page(chosen, artifact_reader(storage), tmp_path / "page.html", title="Shard <7>")
    text, data = _page(page.path)
    assert page.n_clips == 4 and page.n_candidates == 16 and not page.skipped
    assert "<title>Shard &lt;7&gt;</title>" in text
    assert "teacher_" not in text, "the page must not reveal which teacher wrote a caption"
    assert str(panda_home) not in text, "frames are embedded, not linked"
    shown_orders = []
    for item in data["clips"]:
        truth = shard[item["clip_id"]]
        assert sorted(c["text"] for c in item["candidates"]) == sorted(truth.candidates)
        assert all(c["id"] == candidate_id(item["clip_id"], c["text"]) for c in item["candidates"])
        assert len(item["frames"]) == 2 and all(f.startswith("data:image/jpeg;base64,") for f in item["frames"])
        shown_orders.append([c["text"] for c in item["candidates"]] == sorted(truth.candidates))
    assert not all(shown_orders), "candidates are shuffled per clip"

    script = re.findall(r"<script>(.*?)</script>", text, re.S)[-1]
    node = shutil.which("node")
    if node:  # the page's JavaScript must at least parse
        (tmp_path / "page.js").write_text(script)
        subprocess.run([node, "--check", str(tmp_path / "page.js")], check=True)


def test_missing_key_frame_skips_only_that_clip(tmp_path):
    (tmp_path / "f.jpg").write_bytes(b"not a jpeg")
    clips = [ClipToScore("c1", "v", "s", [Candidate("t", "a"), Candidate("u", "b")], [str(tmp_path / "f.jpg")])]
    page = export_label_page(clips, lambda uri: open(uri, "rb").read(), tmp_path / "p.html")
    assert page.n_clips == 0 and page.skipped[0][0] == "c1" and "unreadable" in page.skipped[0][1]


def test_import_from_page_csv_and_plain_csv(panda_home, shard, tmp_path):
    catalog = Catalog(panda_home)
    ids = sorted(shard)
    c0, c1, c2, c3 = (shard[i] for i in ids[:4])
    right = lambda c: c.candidates[c.chosen_index]  # noqa: E731
    wrong = lambda c: c.candidates[(c.chosen_index + 1) % 4]  # noqa: E731
    page_csv = tmp_path / "page.csv"
    page_csv.write_text(
        "clip_id,shard,video_id,choice,chosen_caption,all_bad,annotator,labelled_at,page_id\n"
        f"{c0.clip_id},{SHARD},{c0.video_id},{candidate_id(c0.clip_id, wrong(c0))},,false,ann,2026-01-02T03:04:05Z,p\n"
        f"{c0.clip_id},{SHARD},{c0.video_id},{candidate_id(c0.clip_id, right(c0))},,false,ann,2026-01-02T03:05:00Z,p\n"
        f"{c1.clip_id},{SHARD},{c1.video_id},{ALL_BAD},,true,ann,2026-01-02T03:06:00Z,p\n"
        f"{c2.clip_id},{SHARD},{c2.video_id},,,false,ann,,p\n"
    )
    result = import_labels(catalog, page_csv)
    assert result.n_rows == 3 + 1
    assert [(p.line, p.reason) for p in result.problems] == [(5, "no choice made (row left unlabelled)")]
    by_clip = {p.clip_id: p for p in result.stored}
    assert by_clip[c0.clip_id].chosen_caption == right(c0), "a later row of the same annotator replaces"
    assert by_clip[c0.clip_id].chosen_teacher == f"teacher_{c0.chosen_index}"
    assert by_clip[c0.clip_id].labelled_at.isoformat() == "2026-01-02T03:05:00+00:00"
    assert by_clip[c1.clip_id].all_bad and by_clip[c1.clip_id].chosen_caption is None
    assert len(by_clip[c1.clip_id].keyframe_uris) == 2 and len(by_clip[c1.clip_id].candidates) == 4

    plain = tmp_path / "plain.csv"
    plain.write_text(
        "Clip_ID,Chosen_Caption,Annotator\n"
        f"{c2.clip_id},\"  {right(c2).upper()}  \",bob\n"  # case and spacing differences still match
        f"{c3.clip_id},a caption nobody wrote,bob\n"
        "no-such-clip,whatever,bob\n"
    )
    result2 = import_labels(catalog, plain)
    assert [p.chosen_caption for p in result2.stored] == [right(c2)]
    reasons = [p.reason for p in result2.problems]
    assert reasons == ["chosen caption is not one of the clip's 4 current candidates",
                       "unknown clip_id (not in the clips table)"]

    stored = catalog.query("SELECT clip_id, annotator, label_batch FROM caption_preferences ORDER BY clip_id")
    assert len(stored) == 3
    import_labels(catalog, page_csv)  # same file again: replaced, not duplicated
    assert len(catalog.query("SELECT * FROM caption_preferences")) == 3

    teacher_csv = tmp_path / "teacher.csv"  # teacher_i wrote candidate i; teacher_0 did not write candidate 1
    teacher_csv.write_text(f"clip_id,chosen_teacher,chosen_caption\n{c3.clip_id},teacher_0,{c3.candidates[1]}\n"
                           f"{c3.clip_id},teacher_2,\n")
    result3 = import_labels(catalog, teacher_csv)
    assert [p.reason for p in result3.problems] == ["choice, chosen_caption and chosen_teacher disagree"]
    assert [p.chosen_caption for p in result3.stored] == [c3.candidates[2]]


def test_bad_label_files_raise_clear_errors():
    with pytest.raises(ValueError, match="clip_id column"):
        read_label_csv(b"video,caption\nv,c\n")
    with pytest.raises(ValueError, match="one of the columns"):
        read_label_csv(b"clip_id,comment\nc,nice\n")
    with pytest.raises(ValueError, match="empty"):
        read_label_csv(b"")
