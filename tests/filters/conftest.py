"""Generated videos with known answers, split by the real splitter, and a helper that runs the filters."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the generators next to this file

SIZE = (432, 240)  # short side 240: at the low_resolution bar, so only the filter under test fires


def split_into_inputs(path: Path, shard: str = "s-test", video_id: str | None = None):
    """Clips of a video as `clips` makes them (default detector, no stitching), key frames as stored
    (JPEG round trip), ready for the filters."""
    import av
    import cv2

    from panda_dagster.lib.filters.base import ClipInputs
    from panda_dagster.lib.video.keyframes import encode_jpeg
    from panda_dagster.lib.video.split import SplitConfig, split_video

    result = split_video(str(path), SplitConfig(stitch=False), embed_images=None, models_label="none")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        width, height = stream.width, stream.height
    video_id = video_id or Path(path).stem
    clips = []
    for k, clip in enumerate(result.clips):
        inputs = ClipInputs(f"{video_id}-{k}", video_id, shard, clip.start_s, clip.end_s, width, height)
        inputs.keyframes = [cv2.cvtColor(cv2.imdecode(np.frombuffer(encode_jpeg(result.decoded.samples[p].rgb),
                                                                    np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                            for p in clip.keyframe_samples]
        clips.append(inputs)
    return clips, {video_id: str(path)}


def run_filters(path: Path, *, enabled=None, others=(), shard: str = "s-test", video_id: str | None = None):
    from panda_dagster.lib.filters.registry import FILTER_NAMES, FiltersParams
    from panda_dagster.lib.filters.run import MotionFrameSource, filter_shard

    clips, paths = split_into_inputs(path, shard, video_id)
    assert clips, f"{path.name}: the splitter made no clip"
    params = FiltersParams(enabled=list(enabled or [n for n in FILTER_NAMES if n != "duplicates"]))
    return filter_shard(clips, params, other_shards=others, frames=MotionFrameSource(paths, None))


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    import generate as g

    folder = tmp_path_factory.mktemp("filter_videos")
    return {
        "still": g.still_photo(folder / "still.mp4", size=SIZE, seed=11),
        "ken_burns": g.ken_burns(folder / "ken_burns.mp4", size=SIZE, seed=12),
        "pan": g.pan(folder / "pan.mp4", size=SIZE, seed=13, speed_px_s=50.0),
        "objects": g.moving_objects(folder / "objects.mp4", size=SIZE, seed=14),
        "subtitles": g.moving_objects(folder / "subtitles.mp4", size=SIZE, seed=15, overlay=g.subtitles_overlay),
        "logo_ticker": g.moving_objects(folder / "logo.mp4", size=SIZE, seed=16, overlay=g.logo_ticker_overlay),
        "dark": g.moving_objects(folder / "dark.mp4", size=SIZE, seed=17, brightness=0.06),
        "blurred": g.moving_objects(folder / "blurred.mp4", size=SIZE, seed=18, blur=6.0),
    }


def reasons_of(result) -> set[str]:
    return {reason for row in result.rows for reason in row.reasons}


def replace_params(params, **changes):
    return dataclasses.replace(params, **changes)
