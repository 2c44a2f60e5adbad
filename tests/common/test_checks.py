"""Asset checks: the check logic (panda_dagster.lib.checks) on hand-made tables, and the checks as Dagster
runs them inside raw_videos and clips (per shard, blocking or WARN) on generated videos."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetCheckSeverity, AssetKey, DagsterInstance, asset, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from panda_dagster.lib.checks import (
    check_captions_not_empty,
    check_clip_bounds,
    check_clip_overlaps,
    check_quarantine_share,
    check_scores_finite,
    check_selected_captions,
    max_quarantine_share,
)

# ------------------------------------------------------------------------------------ hand-made tables


def _videos(**overrides) -> pd.DataFrame:
    row = {"video_id": "v1", "fps": 25.0, "duration_s": 20.0, "decodable_s": 20.0}
    return pd.DataFrame([{**row, **overrides}])


def _clip(cid: str, start: float, end: float, method: str = "stitched", video: str = "v1", fps: float = 25.0,
          split_quality: float | None = 0.2) -> dict:
    return {"clip_id": cid, "video_id": video, "start_s": start, "end_s": end, "start_frame": round(start * fps),
            "end_frame": round(end * fps), "method": method, "split_quality": split_quality}


def _clips(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


BOUNDS = {"min_clip_s": 2.5, "max_clip_s": 60.0}


def test_clip_bounds_pass_for_clips_inside_the_video_and_within_length():
    clips = _clips(_clip("a", 0.0, 2.5), _clip("b", 3.0, 9.04), _clip("c", 10.0, 20.0),
                   _clip("n", 4.0, 5.0, method="narration"))  # narration: any positive length
    outcome = check_clip_bounds(clips, _videos(), **BOUNDS)
    assert outcome.passed and outcome.n_checked == 4 and outcome.n_failed == 0, outcome
    assert outcome.stats["shortest_s"] == 1.0 and outcome.stats["longest_s"] == 10.0


def test_clip_bounds_allow_one_frame_of_snapping_but_not_more():
    within = _clips(_clip("a", 0.0, 2.5 - 0.039), _clip("b", 5.0, 20.0 + 0.079))  # < 1 frame short, < 2 frames late
    assert check_clip_bounds(within, _videos(), **BOUNDS).passed
    beyond = _clips(_clip("a", 0.0, 2.5 - 0.05), _clip("b", 5.0, 20.0 + 0.09))
    outcome = check_clip_bounds(beyond, _videos(), **BOUNDS)
    assert outcome.counts == {"too_short": 1, "beyond_video_end": 1}


def test_clip_bounds_fail_beyond_duration_too_short_too_long_and_unknown_video():
    clips = _clips(
        _clip("late", 15.0, 21.0),  # past the 20 s video
        _clip("short", 0.0, 1.0),
        _clip("long", 0.0, 70.0, video="v2"),
        _clip("neg", -1.0, 3.0),
        _clip("empty", 5.0, 5.0, method="narration"),
        _clip("orphan", 0.0, 3.0, video="nowhere"),
    )
    videos = pd.concat([_videos(), _videos(video_id="v2", duration_s=100.0, decodable_s=100.0)])
    outcome = check_clip_bounds(clips, videos, **BOUNDS)
    assert not outcome.passed and outcome.n_failed == 6
    kinds = {v.key: v.kind for v in outcome.examples}
    assert kinds == {"late": "beyond_video_end", "short": "too_short", "long": "too_long", "neg": "before_start",
                     "empty": "non_positive_length", "orphan": "unknown_video"}
    late = next(v for v in outcome.examples if v.key == "late")
    assert "ends at 21.000 s" in late.reason and "20.000 s" in late.reason
    assert "6 of 6 clips fail" in outcome.summary


def test_clip_bounds_use_the_decodable_part_of_a_partial_video():
    partial = _videos(duration_s=20.0, decodable_s=11.0)
    assert check_clip_bounds(_clips(_clip("a", 2.0, 10.9)), partial, **BOUNDS).passed
    outcome = check_clip_bounds(_clips(_clip("a", 2.0, 14.0)), partial, **BOUNDS)
    assert outcome.counts == {"beyond_video_end": 1} and "decodes up to 11.000 s" in outcome.examples[0].reason
    # Only the first max_video_s seconds were split: a clip past them is wrong too.
    capped = check_clip_bounds(_clips(_clip("a", 2.0, 9.0)), _videos(), **BOUNDS, max_video_s=8.0)
    assert capped.counts == {"beyond_max_video_s": 1}


def test_overlap_check_passes_touching_clips_and_narration_over_visual():
    clips = _clips(_clip("a", 0.0, 3.0), _clip("b", 3.0, 6.0), _clip("c", 7.0, 9.0),
                   _clip("n1", 0.5, 8.0, method="narration"), _clip("n2", 8.0, 12.0, method="narration"),
                   _clip("other", 1.0, 5.0, video="v2"))
    outcome = check_clip_overlaps(clips)
    assert outcome.passed and outcome.n_checked == 6 and outcome.stats["n_videos"] == 2


def test_overlap_check_finds_overlapping_clips_of_one_video_and_duplicate_ids():
    clips = _clips(_clip("a", 0.0, 5.0), _clip("b", 4.0, 8.0), _clip("c", 1.0, 2.0, method="shot"),
                   _clip("n1", 0.0, 4.0, method="narration"), _clip("n2", 3.96, 6.0, method="narration"),
                   _clip("d", 9.0, 10.0), _clip("d", 11.0, 12.0))
    outcome = check_clip_overlaps(clips)
    assert not outcome.passed
    assert outcome.counts == {"duplicate_clip_id": 1, "overlap": 3}
    overlapping = {v.key for v in outcome.examples if v.kind == "overlap"}
    assert overlapping == {"b", "c", "n2"}  # c lies inside a (shot and stitched are both visual)


def _selection_tables():
    clips = _clips(_clip("c1", 0, 3), _clip("c2", 3, 6), _clip("c3", 6, 9), _clip("c4", 9, 12))
    candidates = pd.DataFrame([
        {"clip_id": "c1", "teacher": "blip", "caption": "a dog runs on grass"},
        {"clip_id": "c1", "teacher": "llava", "caption": " a brown dog running in a park "},
        {"clip_id": "c2", "teacher": "blip", "caption": "a red car"},
        {"clip_id": "c3", "teacher": "blip", "caption": "   "},  # empty: c3 has no usable candidate
    ])
    selected = pd.DataFrame([
        {"clip_id": "c1", "teacher": "llava", "caption": "a brown dog running in a park", "matching_score": 0.31,
         "margin_to_second": 0.02},
        {"clip_id": "c2", "teacher": "blip", "caption": "a red car", "matching_score": 0.25, "margin_to_second": 0.0},
    ])
    return selected, candidates, clips


def test_selected_captions_pass_one_candidate_per_clip_with_candidates():
    selected, candidates, clips = _selection_tables()
    outcome = check_selected_captions(selected, candidates, clips)
    assert outcome.passed, outcome
    assert outcome.stats == {"n_clips": 4, "n_with_candidates": 2, "n_exempt_quarantined": 0, "n_selected": 2}


def test_selected_captions_fail_when_not_a_candidate_missing_doubled_or_for_a_clip_without_candidates():
    selected, candidates, clips = _selection_tables()
    wrong = selected.copy()
    wrong.loc[0, "caption"] = "a cat"  # c1: not among its candidates
    wrong.loc[1, "teacher"] = "llava"  # c2: right text, wrong teacher
    outcome = check_selected_captions(wrong, candidates, clips)
    assert outcome.counts == {"not_a_candidate": 2}

    missing = selected.iloc[:1]
    assert check_selected_captions(missing, candidates, clips).counts == {"no_selection": 1}
    # A clip selection quarantined (unreadable key frames) is exempt.
    assert check_selected_captions(missing, candidates, clips, quarantined_clip_ids=["c2"]).passed

    doubled = pd.concat([selected, selected.iloc[[1]]], ignore_index=True)
    outcome = check_selected_captions(doubled, candidates, clips)
    assert outcome.counts == {"several_selections": 1} and outcome.examples[0].key == "c2"

    extra = pd.concat([selected, pd.DataFrame([
        {"clip_id": "c3", "teacher": "blip", "caption": "   ", "matching_score": 0.1, "margin_to_second": 0.0},
        {"clip_id": "zz", "teacher": "blip", "caption": "x", "matching_score": 0.1, "margin_to_second": 0.0},
    ])], ignore_index=True)
    assert check_selected_captions(extra, candidates, clips).counts == {"no_candidates": 1, "unknown_clip": 1}


def test_empty_captions_are_found():
    captions = pd.DataFrame([
        {"clip_id": "c1", "teacher": "blip", "caption": "a dog"},
        {"clip_id": "c2", "teacher": "blip", "caption": " \n "},
        {"clip_id": "c3", "teacher": "llava", "caption": None},
    ])
    outcome = check_captions_not_empty(captions)
    assert outcome.counts == {"empty_caption": 2}
    assert {v.key for v in outcome.examples} == {"c2/blip", "c3/llava"}
    assert check_captions_not_empty(captions.iloc[:1]).passed


def test_scores_must_be_finite_nullable_columns_may_be_missing():
    selected = pd.DataFrame({"clip_id": ["a", "b", "c"], "matching_score": [0.3, math.nan, 0.2],
                             "margin_to_second": [0.0, 0.1, math.inf]})
    outcome = check_scores_finite([("selected_captions", selected, ["matching_score", "margin_to_second"], "clip_id")])
    assert outcome.counts == {"selected_captions.matching_score_not_finite": 1,
                              "selected_captions.margin_to_second_not_finite": 1}
    assert outcome.n_checked == 6 and outcome.n_failed == 2
    renamed = selected.rename(columns={"matching_score": "score"})
    assert check_scores_finite([("t", renamed, ["matching_score"], "clip_id")]).counts == {"missing_column": 1}
    clips = _clips(_clip("a", 0, 3, split_quality=None), _clip("b", 3, 6, split_quality=0.4))
    split_quality = [("clips", clips, ["split_quality"], "clip_id")]
    assert check_scores_finite(split_quality, nullable=["clips.split_quality"]).passed
    clips.loc[1, "split_quality"] = -math.inf
    assert not check_scores_finite([("clips", clips, ["split_quality"], "clip_id")],
                                   nullable=["clips.split_quality"]).passed


def _quarantine(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame([{"uri": u, "stage": s, "action": a, "reason": f"{s}: broken"} for u, s, a in rows],
                        columns=["uri", "stage", "action", "reason"])


def test_quarantine_share_warns_above_the_bar(monkeypatch):
    videos = pd.DataFrame({"video_id": [f"v{i}" for i in range(8)]})
    two_dropped = _quarantine(("x.mp4", "raw_videos", "dropped"), ("y.mp4", "raw_videos", "dropped"),
                              ("v1.mp4", "raw_videos", "kept_partial"), ("c.mp4", "clips", "dropped"))
    outcome = check_quarantine_share(videos, two_dropped, "raw_videos", 0.2)  # 2 of 10 = 20 %: at the bar
    assert outcome.passed and outcome.stats["share_dropped"] == 0.2 and outcome.stats["n_kept_partial"] == 1
    outcome = check_quarantine_share(videos, two_dropped, "raw_videos", 0.15)
    assert not outcome.passed and outcome.n_failed == 2 and "above the bar" in outcome.summary
    assert check_quarantine_share(videos, _quarantine(), "raw_videos", 0.0).passed

    assert max_quarantine_share() == 0.2
    monkeypatch.setenv("PANDA_MAX_QUARANTINE_SHARE", "0.05")
    assert max_quarantine_share() == 0.05 and max_quarantine_share(0.5) == 0.5
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        max_quarantine_share(1.5)


# ----------------------------------------------------------------------------------- through Dagster


@pytest.fixture(scope="module")
def shard_videos(tmp_path_factory) -> Path:
    """Two good generated videos (a hard cut each) and one file that is not a video."""
    from panda_dagster.fixtures.synth import Scene, Transition, render_video

    folder = tmp_path_factory.mktemp("check_videos")
    for i in range(2):
        render_video(folder / f"scene{i}.mp4", [Scene(3.0, background="blue", texture="striped", seed=i),
                                                Scene(3.2, background="orange", texture="checkered", seed=9 + i)],
                     [Transition("cut")], fps=20.0, size=(160, 90), audio=False)
    (folder / "broken.mp4").write_bytes(b"not a video at all" * 50)
    return folder


CLIPS_CONFIG = {"ops": {"clips": {"config": {"stitch": False}}}}


def _ingest(home: Path, folder: Path, shard_size: int) -> list[str]:
    from panda_dagster.lib.catalog import Catalog
    from panda_dagster.lib.ingest import ingest_source
    from panda_dagster.lib.storage import LocalStorage

    return ingest_source(folder, Catalog(home), LocalStorage(home / "artifacts"), shard_size=shard_size,
                         prefix="chk").keys


def _resources(home: Path) -> dict:
    from panda_dagster.clips.resources import ClipEmbedderResource
    from panda_dagster.common.resources import PandaResource

    return {"panda": PandaResource(home=str(home)), "clip_embedder": ClipEmbedderResource(profile="tiny")}


def _evaluations(result) -> dict[tuple[str, str, str | None], object]:
    out = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            out[(data.asset_key.to_user_string(), data.check_name, data.partition)] = data
    return out


def _instance(shards: list[str]) -> DagsterInstance:
    from panda_dagster.common.partitions import video_shards

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, shards)
    return instance


def test_checks_run_per_shard_inside_raw_videos_and_clips(panda_home, shard_videos):
    from panda_dagster.clips.assets import clips
    from panda_dagster.ingest.assets import raw_videos

    (shard,) = _ingest(panda_home, shard_videos, shard_size=10)
    instance = _instance([shard])
    result = materialize([raw_videos, clips], partition_key=shard, instance=instance, resources=_resources(panda_home),
                         run_config=CLIPS_CONFIG, raise_on_error=False)
    assert result.success  # the quarantine-share check only warns
    evaluations = _evaluations(result)
    assert set(evaluations) == {
        ("raw_videos", "quarantine_share_below_bar", shard), ("clips", "clips_within_video_and_length", shard),
        ("clips", "clips_do_not_overlap", shard), ("clips", "scores_finite", shard)}
    share = evaluations[("raw_videos", "quarantine_share_below_bar", shard)]
    assert not share.passed and share.severity == AssetCheckSeverity.WARN and not share.blocking
    assert share.metadata["n_dropped"].value == 1 and share.metadata["n_entries"].value == 3
    assert "broken.mp4" in share.metadata["examples"].value
    bounds = evaluations[("clips", "clips_within_video_and_length", shard)]
    assert bounds.passed and bounds.blocking and bounds.metadata["n_checked"].value >= 4  # two shots per video
    assert bounds.target_materialization_data is not None  # tied to this shard's materialization
    assert all(e.passed for k, e in evaluations.items() if k[0] == "clips")
    # Dagster keeps each shard's check status.
    for check in ("clips_within_video_and_length", "clips_do_not_overlap"):
        (record,) = instance.event_log_storage.get_asset_check_execution_history(
            _check_key("clips", check), limit=5)
        assert record.partition == shard and record.status.value == "SUCCEEDED"

    # A looser bar (run config) lets the same shard pass.
    loose = {"ops": {"raw_videos": {"config": {"max_quarantine_share": 0.5}}}}
    again = materialize([raw_videos], partition_key=shard, instance=instance, resources=_resources(panda_home),
                        run_config=loose)
    assert _evaluations(again)[("raw_videos", "quarantine_share_below_bar", shard)].passed


def _check_key(asset_name: str, check: str):
    from dagster import AssetCheckKey

    return AssetCheckKey(AssetKey(asset_name), check)


def test_a_range_run_reports_each_shard_and_a_failed_blocking_check_stops_downstream(panda_home, shard_videos,
                                                                                    monkeypatch):
    from panda_dagster.clips.assets import clips
    from panda_dagster.common.partitions import video_shards
    from panda_dagster.ingest.assets import raw_videos
    from panda_dagster.lib.catalog import Catalog

    shards = _ingest(panda_home, shard_videos, shard_size=1)
    instance = _instance(shards)
    tags = {ASSET_PARTITION_RANGE_START_TAG: shards[0], ASSET_PARTITION_RANGE_END_TAG: shards[-1]}
    result = materialize([raw_videos, clips], instance=instance, resources=_resources(panda_home),
                         run_config=CLIPS_CONFIG, tags=tags, raise_on_error=False)
    assert result.success
    evaluations = _evaluations(result)
    for shard in shards:
        assert evaluations[("clips", "clips_do_not_overlap", shard)].passed
        evaluation = evaluations[("clips", "clips_within_video_and_length", shard)]
        assert evaluation.metadata["shard"].value == shard
        # Tied to that shard's materialization in this run.
        assert evaluation.target_materialization_data.run_id == result.run_id
    assert not any(partition is None for _, _, partition in evaluations)
    n_clips = [evaluations[("clips", "clips_do_not_overlap", s)].metadata["n_checked"].value for s in shards]
    assert sorted(n_clips) == [0, 2, 2]  # the broken file's shard has none; two shots per video

    # A splitter bug that writes a clip past its video's end: the blocking check catches it on what the
    # catalog holds, the clips step fails and the asset downstream does not run.
    real_replace = Catalog.replace_shard

    def corrupting_replace(self, table, shard, rows, part=None):
        rows = list(rows)
        if table == "clips" and rows:
            rows[0].end_s += 30.0
        return real_replace(self, table, shard, rows, part)

    monkeypatch.setattr(Catalog, "replace_shard", corrupting_replace)
    ran = []

    @asset(partitions_def=video_shards, deps=[clips])
    def after_clips(context) -> None:
        ran.append(context.partition_key)

    shard = next(s for s in shards if not Catalog(panda_home).read_shard("clips", s).empty)
    result = materialize([clips, after_clips], partition_key=shard, instance=instance,
                         resources=_resources(panda_home), run_config=CLIPS_CONFIG, raise_on_error=False)
    assert not result.success and ran == []
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "clips" and "blocking asset check failed" in failure.step_failure_data.error.message
    bounds = _evaluations(result)[("clips", "clips_within_video_and_length", shard)]
    assert not bounds.passed and bounds.severity == AssetCheckSeverity.ERROR
    assert bounds.metadata["failures_by_kind"].value == {"beyond_video_end": 1}
    assert "decodes up to" in bounds.metadata["examples"].value
    # The failed run's shard shows the failed check; the other shards keep their passed status.
    history = instance.event_log_storage.get_asset_check_execution_history(
        _check_key("clips", "clips_within_video_and_length"), limit=10)
    latest = {}
    for record in history:  # newest first
        latest.setdefault(record.partition, record.status.value)
    assert latest[shard] == "FAILED" and all(latest[s] == "SUCCEEDED" for s in shards if s != shard)
