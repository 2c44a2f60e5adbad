"""Clip files cut with the ffmpeg bundled by imageio-ffmpeg.

`copy` cuts without re-encoding: the clip starts at the first keyframe at or after its start (a stream
copy can only start on a keyframe), so the file may begin a little later than the clip row says (the
start actually written is returned), and it ends on a packet boundary (a few frames of slack).
`reencode` is frame-exact (H.264/AAC in MP4) at encoding cost.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CUT_MODES = ("copy", "reencode")


class ClipCutError(Exception):
    pass


@dataclass
class CutClip:
    path: Path
    start_s: float  # span of the source the file holds
    end_s: float
    mode: str


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def cut_clip(source: str | Path, dest: str | Path, start_s: float, end_s: float, mode: str = "copy",
             keyframe_times: Sequence[float] | None = None, timeout_s: float = 600.0) -> CutClip:
    if mode not in CUT_MODES:
        raise ValueError(f"cut mode must be one of {CUT_MODES}, got {mode!r}")
    if end_s <= start_s:
        raise ValueError(f"empty span {start_s}-{end_s}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if mode == "copy":
        later = [t for t in (keyframe_times or []) if start_s - 1e-6 <= t < end_s]
        if keyframe_times is not None and not later:
            # No keyframe inside the clip: a stream copy would start before the clip; encode instead.
            return cut_clip(source, dest, start_s, end_s, "reencode", None, timeout_s)
        start = later[0] if later else start_s
        # -ss before -i seeks to the keyframe at or before the time: aim a millisecond past ours.
        args = ["-ss", f"{start + 0.001:.3f}", "-i", str(source), "-t", f"{end_s - start:.3f}",
                "-map", "0:v:0", "-map", "0:a:0?", "-c", "copy", "-avoid_negative_ts", "make_zero"]
    else:
        start = start_s
        args = ["-ss", f"{start_s:.3f}", "-i", str(source), "-t", f"{end_s - start_s:.3f}",
                "-map", "0:v:0", "-map", "0:a:0?", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"]
    partial = dest.with_name(f".{dest.stem}.partial{dest.suffix}")
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args, str(partial)]
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s)
    if proc.returncode != 0 or not partial.exists() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        raise ClipCutError(f"ffmpeg could not cut {source} {start_s:.3f}-{end_s:.3f} ({mode}): "
                           f"{proc.stderr.decode(errors='replace').strip()[-500:]}")
    partial.replace(dest)
    return CutClip(dest, start, end_s, mode)
