"""A small catalog with two shards (one an evaluation set with reference captions) and key frames."""

from __future__ import annotations

import io
import json
import zlib

import numpy as np
import pytest

from panda_dagster.lib.catalog import Catalog
from panda_dagster.lib.ids import clip_id
from panda_dagster.lib.models.profiles import TINY_LABEL
from panda_dagster.lib.probe import ProbeResult
from panda_dagster.lib.records import Cue, QuarantineRecord, VideoRecord
from panda_dagster.lib.selection.records import CaptionScore, SelectedCaption
from panda_dagster.lib.storage import LocalStorage
from panda_dagster.lib.teachers.records import TeacherCaption
from panda_dagster.lib.video.records import ClipRecord

TOPICS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black", "cyan", "pink", "brown", "grey"]
PALETTE = np.random.default_rng(7).integers(0, 256, size=(len(TOPICS), 3))
FILLER = ["scene", "shot", "moment", "view", "sequence", "footage", "image", "take"]


def keyframe_jpeg(topic: int, rng) -> bytes:
    from PIL import Image

    pixels = np.clip(PALETTE[topic][None, None, :] + rng.normal(0, 12, size=(24, 32, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _video(video_id: str, shard: str, n_cues: int, metadata: dict | None = None) -> VideoRecord:
    probe = ProbeResult(container="mp4", codec="h264", pix_fmt="yuv420p", duration_s=60.0, fps=25.0, n_frames=1500,
                        width=64, height=48, is_vfr=False, has_audio=False, n_audio_streams=0, audio_codec=None,
                        size_bytes=1000, sha256="0" * 64, decodable_s=60.0, partial_reason=None)
    return VideoRecord(video_id=video_id, shard=shard, uri=f"/data/{video_id}.mp4", local_path=f"/data/{video_id}.mp4",
                       probe=probe, title=None, description=None, url=None,
                       metadata_json=json.dumps(metadata) if metadata else None, n_subtitle_cues=n_cues)


def populate(home, n_videos: int = 24, clips_per_video: int = 5, eval_videos: int = 4) -> dict:
    """Shard `train-a`: n_videos videos; shard `evalset`: videos with per-video references."""
    catalog = Catalog(home)
    storage = LocalStorage(home / "artifacts")
    rng = np.random.default_rng(0)
    info = {"catalog": catalog, "storage": storage, "topics": {}}
    for shard, nv, is_eval in (("train-a", n_videos, False), ("evalset", eval_videos, True)):
        videos, clips, teachers, selected, scores, subs = [], [], [], [], [], []
        for v in range(nv):
            vid = f"{shard}-v{v:02d}"
            video_topics = []
            for c in range(clips_per_video):
                start, end = c * 9.0, c * 9.0 + 4.0 + (c % 3) * 3.0
                cid = clip_id(vid, start, end)
                topic = int(rng.integers(len(TOPICS)))
                video_topics.append(topic)
                info["topics"][cid] = topic
                uris = [storage.put_bytes(f"shards/{shard}/keyframes/{cid}_{k}.jpg", keyframe_jpeg(topic, rng))
                        for k in range(2)]
                good = f"a {TOPICS[topic]} {FILLER[int(rng.integers(len(FILLER)))]}"
                wrong = TOPICS[topic] if rng.random() < 0.3 else TOPICS[int(rng.integers(len(TOPICS)))]
                teacher_texts = {"tinyblip": f"a {wrong} thing", "tinyllava": good + " <b>bold</b>"}
                clips.append(ClipRecord(clip_id=cid, video_id=vid, shard=shard, start_s=start, end_s=end,
                                        start_frame=int(start * 25), end_frame=int(end * 25), method="stitched",
                                        n_shots_merged=1, detector="content", narration=None, keyframe_uris=uris,
                                        clip_uri=None, split_quality=float(rng.uniform(0.05, 0.4)),
                                        models_label=TINY_LABEL))
                for rank, (name, text) in enumerate(sorted(teacher_texts.items(), key=lambda kv: kv[0] != "tinyllava"), 1):
                    teachers.append(TeacherCaption(clip_id=cid, shard=shard, video_id=vid, teacher=name, kind="image",
                                                   model_id=f"tiny/{name}", revision="r", prompt_sha="p", caption=text,
                                                   n_tokens=len(text.split()), latency_ms=1.0, profile="tiny"))
                    scores.append(CaptionScore(clip_id=cid, shard=shard, teacher=name, caption=text,
                                               score=0.3 - 0.1 * rank, rank=rank, video_id=vid,
                                               selection_model_version=None))
                accepted = c != clips_per_video - 1  # one rejected clip per video
                selected.append(SelectedCaption(clip_id=cid, shard=shard, caption=teacher_texts["tinyllava"],
                                                teacher="tinyllava", matching_score=float(rng.uniform(0.1, 0.4)),
                                                margin_to_second=0.1, video_id=vid, n_candidates=2, accepted=accepted,
                                                reject_reason=None if accepted else "below_quality_bar",
                                                scorer="tiny", selection_model_version=None, models_label=TINY_LABEL))
                # narration: says the topic half of the time
                said = TOPICS[topic] if rng.random() < 0.5 else "nothing much"
                subs.append(Cue(video_id=vid, shard=shard, cue_index=c, start_s=start + 0.5, end_s=end - 0.5,
                                text=f"now we look at {said}", origin="file"))
            refs = {"references": [f"a {TOPICS[t]} {w}" for t in video_topics[:1] for w in ("scene", "view")]} if is_eval else None
            videos.append(_video(vid, shard, clips_per_video, refs))
        catalog.replace_shard("videos", shard, videos)
        catalog.replace_shard("clips", shard, clips)
        catalog.replace_shard("teacher_captions", shard, teachers)
        catalog.replace_shard("selected_captions", shard, selected)
        catalog.replace_shard("caption_scores", shard, scores)
        catalog.replace_shard("subtitles", shard, subs, part="subtitle")
        catalog.replace_shard("quarantine", shard, [
            QuarantineRecord(shard=shard, uri=f"/data/broken-{shard}.mp4", stage="raw_videos",
                             reason=f"no video stream in /data/broken-{shard}.mp4")], part="raw_videos")
    return info


@pytest.fixture
def populated(panda_home):
    return populate(panda_home)


class SyntheticEncoders:
    """Deterministic stand-ins for open_clip: images -> random projection of a downsampled image;
    texts -> sum of a fixed random vector per word."""

    def __init__(self, dim: int = 32):
        self.dim = dim
        self.image_proj = np.random.default_rng(1).normal(size=(4 * 4 * 3, dim))

    def embed_images(self, images) -> np.ndarray:
        out = []
        for img in images:
            small = np.asarray(img.resize((4, 4)), dtype=np.float32) / 255.0
            out.append(small.reshape(-1) @ self.image_proj)
        return np.asarray(out, dtype=np.float32)

    def word_vector(self, word: str) -> np.ndarray:
        return np.random.default_rng(zlib.crc32(word.encode())).normal(size=self.dim)

    def embed_texts(self, texts) -> np.ndarray:
        return np.asarray([sum(self.word_vector(w) for w in t.lower().split()) for t in texts], dtype=np.float32)


@pytest.fixture
def encoders():
    return SyntheticEncoders()
