"""Motion: how much the camera moves and how much of the scene moves on its own.

Dense optical flow (OpenCV DIS, no weights) between consecutive small frames 0.25 s apart; a homography
fitted robustly (RANSAC) to the flow is the camera's part (pan, tilt, zoom, roll: everything a rotating
camera or a planar scene does to the picture); what the homography does not explain is object motion
(and parallax). Only textured points count (flow in flat regions is a guess), and residuals below
`residual_px` are flow noise. Peers (Open-Sora's UniMatch score, NeMo's motion vectors) threshold the
total flow only, so a zoom into a still photo or a pan over a static object passes them; separating the
camera part is what catches those (`camera_motion_only`).

No shake code: the frame-to-frame jitter of the fitted camera motion did not separate handheld footage
(cockatoo, ASL webcam) from deliberate fast pans on the shared videos, so it is reported as a score only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from panda_dagster.lib.filters.base import ClipInputs, FilterBase
from panda_dagster.lib.filters.frames import grid_pairs

STATIC = "static"
CAMERA_MOTION_ONLY = "camera_motion_only"


@dataclass
class MotionParams:
    """Speeds are fractions of the frame diagonal per second; object motion is a share of the textured
    frame area."""

    camera_min: float = field(default=0.005, metadata={"help": "Camera speed (share of the frame diagonal per "
                              "second) below which the camera counts as still"})
    object_min: float = field(default=0.01, metadata={"help": "Share of the textured picture moving on its "
                              "own (after removing the camera motion) below which nothing moves in the scene"})
    residual_px: float = field(default=0.6, metadata={"help": "Flow residual (pixels at 160 px width, 0.25 s "
                               "apart) above which a point moves on its own; below it is flow noise"})
    max_pairs: int = field(default=8, metadata={"help": "Frame pairs measured per clip (evenly spread)"})


def _grid(h: int, w: int, step: int = 4, border: int = 4) -> np.ndarray:
    ys, xs = np.mgrid[border:h - border:step, border:w - border:step]
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


def pair_motion(a: np.ndarray, b: np.ndarray, residual_px: float) -> tuple[float, float, float] | None:
    """(camera displacement in px, moving share of textured points, RMS residual px) for one pair, or
    None when the frame has too little texture to say anything."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(a, b, None)
    h, w = a.shape
    points = _grid(h, w)
    xi, yi = points[:, 0].astype(int), points[:, 1].astype(int)
    gx = cv2.Sobel(a, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(a, cv2.CV_32F, 0, 1, ksize=3)
    texture = np.hypot(gx, gy)[yi, xi] / 8.0 > 4.0  # gradient of 4 grey levels per pixel
    if texture.sum() < 30:
        return None
    moved = points + flow[yi, xi]
    src, dst = points[texture], moved[texture]
    homography, _ = cv2.findHomography(src, dst, cv2.RANSAC, 1.0, maxIters=500, confidence=0.99)
    if homography is None:
        return None
    predicted_all = cv2.perspectiveTransform(points[None], homography)[0]
    camera_px = float(np.linalg.norm(predicted_all - points, axis=1).mean())
    residual = np.linalg.norm(dst - cv2.perspectiveTransform(src[None], homography)[0], axis=1)
    moving_share = float((residual > residual_px).mean())
    return camera_px, moving_share, float(np.sqrt((residual ** 2).mean()))


class MotionFilter(FilterBase, name="motion", params_type=MotionParams,
                   score_names=("motion_camera", "motion_object", "motion_jitter"), needs_motion_frames=True):
    def score(self, clip: ClipInputs, params: MotionParams) -> dict[str, float]:
        nan = self.no_scores()
        frames = clip.motion_frames
        if frames is None or len(frames) < 2:
            return nan
        h, w = frames.gray.shape[1:]
        diagonal = float(np.hypot(h, w))
        # residual_px is defined at 160 px width and 0.25 s; scale to the frames at hand
        cameras, shares = [], []
        for a, b, dt in grid_pairs(frames, params.max_pairs):
            if dt <= 0:
                continue
            scale = (w / 160.0) * (dt / 0.25)
            measured = pair_motion(a, b, params.residual_px * max(scale, 0.25))
            if measured is None:
                continue
            camera_px, share, _ = measured
            cameras.append(camera_px / diagonal / dt)
            shares.append(share)
        if not cameras:
            return nan
        speeds = np.asarray(cameras)
        return {
            "motion_camera": float(np.median(speeds)),
            "motion_object": float(np.mean(shares)),
            # relative spread of the camera speed between pairs: steady pans/zooms low, shake high
            "motion_jitter": float(np.std(speeds) / (np.mean(speeds) + 1e-3)) if len(speeds) > 1 else 0.0,
        }

    def decide(self, scores: Mapping[str, float], params: MotionParams) -> list[str]:
        camera, moving = scores.get("motion_camera", np.nan), scores.get("motion_object", np.nan)
        if not (np.isfinite(camera) and np.isfinite(moving)) or moving >= params.object_min:
            return []
        return [STATIC] if camera < params.camera_min else [CAMERA_MOTION_ONLY]
