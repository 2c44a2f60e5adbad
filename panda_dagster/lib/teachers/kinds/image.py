"""Kind `image`: an image captioner (BLIP, BLIP-2, GIT) on the clip's stored key frames, one caption per
frame, the distinct ones joined."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from panda_dagster.lib.teachers.frames import load_keyframes, pick_evenly
from panda_dagster.lib.teachers.kinds import PlanContext, PlannedRequest, TeacherKind, request_for
from panda_dagster.lib.teachers.prompts import prompt_sha
from panda_dagster.lib.teachers.registry import TeacherSpec
from panda_dagster.lib.teachers.runners import Generation, Prepared, TeacherRequest, TeacherRunner, special_token_ids


def plan(spec: TeacherSpec, ctx: PlanContext) -> PlannedRequest:
    keyframes = tuple(pick_evenly(list(ctx.clip.keyframe_uris), spec.num_frames))
    # Frames are named by clip id and index, not by where storage keeps them: moving the
    # artifacts (local folder <-> S3) must not invalidate the cache.
    sha = prompt_sha(ctx.fingerprint, ctx.prompt, [PurePosixPath(uri).name for uri in keyframes])
    if not keyframes:
        return PlannedRequest(request_for(ctx, sha), "clip has no stored key frames")
    return PlannedRequest(request_for(ctx, sha, keyframe_uris=keyframes))


class ImageCaptionRunner(TeacherRunner):
    """BLIP / BLIP-2 / GIT through AutoProcessor + AutoModelForImageTextToText, on stored key frames."""

    PAD_LEFT = False  # encoder-decoder captioners: the prompt prefix is right-padded

    def __init__(self, spec: TeacherSpec, device: str = "auto", s3_client=None):
        super().__init__(spec, device, s3_client)
        hf = self.transformers()
        self.processor = self.load_pretrained(hf.AutoProcessor)
        self.model = self.load_weights(hf.AutoModelForImageTextToText)
        self.tokenizer = self.processor.tokenizer
        self.special_ids = special_token_ids(self.tokenizer)

    def prepare(self, request: TeacherRequest) -> Prepared:
        frames = load_keyframes(request.keyframe_uris, self.spec.num_frames, self.s3_client)
        # Resizing/normalising happens here, in the prefetch thread, not in the generation loop.
        # BLIP-2's processor ties image placeholders to the text, so it is processed with the batch.
        pixels = None
        if self.spec.family != "blip2":
            pixels = self.processor.image_processor(frames, return_tensors="pt")["pixel_values"]
        return Prepared(request, (frames, pixels))

    def _batch_inputs(self, batch: Sequence[Prepared], prompt: str):
        import torch

        if all(item.payload[1] is not None for item in batch):
            inputs: dict[str, Any] = {"pixel_values": torch.cat([item.payload[1] for item in batch])}
            if prompt:
                n_images = inputs["pixel_values"].shape[0]
                inputs.update(self.processor(text=[prompt] * n_images, padding=True, return_tensors="pt"))
            from transformers import BatchFeature

            return BatchFeature(inputs)
        images = [frame for item in batch for frame in item.payload[0]]
        kwargs: dict[str, Any] = {"images": images, "return_tensors": "pt"}
        if prompt:
            kwargs["text"] = [prompt] * len(images)
            kwargs["padding"] = True
        return self.processor(**kwargs)

    def generate(self, batch: Sequence[Prepared]) -> list[Generation]:
        import torch

        owners = [i for i, item in enumerate(batch) for _ in item.payload[0]]
        prompt = batch[0].request.prompt  # image teachers have one fixed prompt
        inputs = self._batch_inputs(batch, prompt).to(self.device, dtype=self.dtype)
        with torch.no_grad():
            out = self.model.generate(**inputs, **self._generate_kwargs())
        prompt_tokens = self.count_tokens(inputs["input_ids"][0]) if "input_ids" in inputs else 0
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        results = [Generation([], 0) for _ in batch]
        for owner, text, ids in zip(owners, texts, out):
            results[owner].parts.append(text)
            results[owner].n_tokens += max(0, self.count_tokens(ids) - prompt_tokens)
        return results

    def close(self) -> None:
        self.model = None


KIND = TeacherKind(
    name="image", families=("blip", "git", "blip2"), runner=ImageCaptionRunner, plan=plan, min_frames=1,
    description="image captioner on the clip's key frame(s)",
)
