"""Text overlay: burned-in subtitles, slides, logos, tickers (PP-OCR, packaged in rapidocr-onnxruntime).

PP-OCRv4 text detection runs on the stored key frames; the score is the share of the frame covered by
detected text boxes (the union of the box polygons, largest over the frames looked at), and the text
itself is recognised for the row (recognition only runs where boxes were found). cosmos-curate uses
PaddleOCR the same way; Open-Sora uses DBNet boxes (the same detector family). Open-Sora drops any clip with a
detected box (`--ocrmax 0`); here the bar is 2 % of the frame, so a small corner watermark passes while
one line of subtitles or a caption card does not: the text cards of the shared Big Buck Bunny trailer
cover 3.6-6.4 %, generated subtitles and a logo + ticker 13-16 %, the large green "VP9" burned into the
shared tractor clip 4.3 % (flagged: it is an overlay), and no clip without text scored above 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from panda_dagster.lib.filters.base import ClipInputs, FilterBase, exceeds

TEXT_OVERLAY = "text_overlay"
OCR_MODEL_ID = "PP-OCRv4 det+rec (rapidocr-onnxruntime 1.4.4)"


@dataclass
class TextParams:
    max_text_area: float = field(default=0.02, metadata={"help": "Drop when text boxes cover more than this "
                                 "share of a key frame (burned-in subtitles, slides, tickers)"})
    min_text_score: float = field(default=0.5, metadata={"help": "Recognition confidence a box needs to count "
                                  "as text (rapidocr's default; removes texture the detector mistakes for text)"})
    frames: int = field(default=2, metadata={"help": "Key frames read per clip (spread over the clip); "
                        "the detector costs about 50 ms per frame on one core"})


def _engine(text_score: float):
    from panda_dagster.lib.models.cache import cached_model

    def load():
        from rapidocr_onnxruntime import RapidOCR

        # limit_type max: key frames (224 px short side) are detected at their own size, never upscaled
        return RapidOCR(det_limit_type="max", intra_op_num_threads=1, inter_op_num_threads=1,
                        text_score=text_score, print_verbose=False)

    return cached_model(("rapidocr", "1.4.4", text_score), load)


def pick_evenly(items: list, k: int) -> list:
    if k <= 0 or not items:
        return []
    if len(items) <= k:
        return list(items)
    return [items[int(round(i))] for i in np.linspace(0, len(items) - 1, k)]


def text_boxes(rgb: np.ndarray, params: TextParams) -> tuple[float, list[str]]:
    """(share of the frame covered by text boxes, recognised lines) of one RGB frame."""
    import cv2

    result, _ = _engine(params.min_text_score)(
        cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), use_det=True, use_cls=False, use_rec=True)
    if not result:
        return 0.0, []
    mask = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.asarray(r[0], np.int32) for r in result], 1)
    return float(mask.mean()), [str(r[1]) for r in result if r[1]]


class TextFilter(FilterBase, name="text", params_type=TextParams, score_names=("text_area",)):
    def score(self, clip: ClipInputs, params: TextParams) -> dict[str, float]:
        frames = pick_evenly(clip.keyframes, params.frames)
        if not frames:
            return self.no_scores()
        areas, seen = [], []
        for frame in frames:
            area, lines = text_boxes(frame, params)
            areas.append(area)
            seen.extend(line for line in lines if line not in seen)
        clip.notes["text"] = " | ".join(seen)
        return {"text_area": float(max(areas))}

    def decide(self, scores: Mapping[str, float], params: TextParams) -> list[str]:
        return [TEXT_OVERLAY] if exceeds(scores, "text_area", params.max_text_area) else []
