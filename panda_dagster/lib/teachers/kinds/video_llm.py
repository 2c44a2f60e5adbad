"""Kind `video_llm`: a video-LLM (SmolVLM2) on frames sampled inside the clip, each with its time, plus the
video's title, description and the speech during the clip."""

from __future__ import annotations

from collections.abc import Sequence

from panda_dagster.lib.processes import usable_cores
from panda_dagster.lib.teachers.frames import ThreadSamplers, VideoFrameSampler
from panda_dagster.lib.teachers.kinds import PlanContext, PlannedRequest, TeacherKind, request_for
from panda_dagster.lib.teachers.prompts import frame_timestamps, prompt_sha, video_llm_messages
from panda_dagster.lib.teachers.registry import TeacherSpec
from panda_dagster.lib.teachers.runners import Generation, Prepared, TeacherRequest, TeacherRunner, special_token_ids


MAX_DECODE_THREADS = 4  # past this the model, not the decoding, is what a GPU run waits on


def plan(spec: TeacherSpec, ctx: PlanContext) -> PlannedRequest:
    clip, video = ctx.clip, ctx.video
    times = tuple(frame_timestamps(clip.start_s, clip.end_s, spec.num_frames))
    sha = prompt_sha(ctx.fingerprint, ctx.prompt, [clip.video_id, times])
    if video is None or not video.local_path:
        return PlannedRequest(request_for(ctx, sha), "video record or local file missing for this clip")
    return PlannedRequest(request_for(ctx, sha, video_path=video.local_path, frame_times_s=times))


class VideoLLMRunner(TeacherRunner):
    """SmolVLM2-style video-LLM: frames sampled inside the clip, each with its time, plus the metadata
    prompt, through the processor's chat template."""

    def __init__(self, spec: TeacherSpec, device: str = "auto", s3_client=None):
        super().__init__(spec, device, s3_client)
        hf = self.transformers()
        self.processor = self.load_pretrained(hf.AutoProcessor)
        self.processor.tokenizer.padding_side = "left"  # batched decoder-only generation
        self.model = self.load_weights(hf.AutoModelForImageTextToText)
        self.special_ids = special_token_ids(self.processor.tokenizer)

    @property
    def prepare_workers(self) -> int:
        # Decoding the clips' frames is this kind's bottleneck on CPU (the model waits on it): one
        # decoding thread per core, each with its own open video.
        return min(usable_cores(), MAX_DECODE_THREADS)

    @property
    def frame_sampler(self) -> VideoFrameSampler:
        """The calling prefetch thread's sampler. Made on first use: runners built by `from_loaded`
        (benchmarks) skip __init__."""
        if getattr(self, "_frame_samplers", None) is None:
            self._frame_samplers = ThreadSamplers()
        return self._frame_samplers.get()

    def end_pass(self) -> None:
        if getattr(self, "_frame_samplers", None) is not None:
            self._frame_samplers.close()

    def build_chat(self, request: TeacherRequest) -> str:
        messages = video_llm_messages(request.prompt, list(request.frame_times_s), request.clip_start_s)
        return self.processor.apply_chat_template(messages, add_generation_prompt=True)

    def _processor_kwargs(self) -> dict:
        # Frames are shown whole: SmolVLM's tiling of each image into sub-crops is meant for documents.
        return {"do_image_splitting": False} if self.spec.family == "smolvlm" else {}

    def prepare(self, request: TeacherRequest) -> Prepared:
        if not request.video_path:
            raise ValueError("clip has no video file to sample frames from")
        # The engine hands a video's clips over one after another: the sampler keeps that video open
        # and decodes it once for all of them.
        frames = self.frame_sampler.sample(request.video_path, list(request.frame_times_s))
        chat = self.build_chat(request)
        # Tokenising and image preprocessing run here, in the prefetch thread; generate() only collates.
        encoded = self.processor(text=[chat], images=[frames], return_tensors="pt", **self._processor_kwargs())
        return Prepared(request, (chat, frames, encoded))

    def _collate(self, batch: Sequence[Prepared]):
        """Left-pad the per-clip token ids and stack the image tensors; None when the clips' image tensors
        differ in shape (then the processor handles the whole batch)."""
        import torch
        from transformers import BatchFeature

        encoded = [item.payload[2] for item in batch]
        pad_id = self.processor.tokenizer.pad_token_id
        longest = max(e["input_ids"].shape[1] for e in encoded)
        ids, masks = [], []
        for e in encoded:
            missing = longest - e["input_ids"].shape[1]
            ids.append(torch.nn.functional.pad(e["input_ids"], (missing, 0), value=pad_id))
            masks.append(torch.nn.functional.pad(e["attention_mask"], (missing, 0), value=0))
        inputs = {"input_ids": torch.cat(ids), "attention_mask": torch.cat(masks)}
        for key in encoded[0].keys():
            if key in inputs:
                continue
            values = [e[key] for e in encoded]
            if not all(isinstance(v, torch.Tensor) and v.shape[1:] == values[0].shape[1:] for v in values):
                return None
            inputs[key] = torch.cat(values)
        return BatchFeature(inputs)

    def generate(self, batch: Sequence[Prepared]) -> list[Generation]:
        import torch

        inputs = self._collate(batch)
        if inputs is None:
            inputs = self.processor(text=[item.payload[0] for item in batch], images=[item.payload[1] for item in batch],
                                    padding=True, return_tensors="pt", **self._processor_kwargs())
        inputs = inputs.to(self.device, dtype=self.dtype)
        with torch.no_grad():
            out = self.model.generate(**inputs, **self._generate_kwargs())
        new = out[:, inputs["input_ids"].shape[1]:]
        decoded = self.processor.batch_decode(new, skip_special_tokens=True)
        return [Generation([text], self.count_tokens(ids)) for text, ids in zip(decoded, new)]

    def close(self) -> None:
        self.end_pass()
        self.model = None


KIND = TeacherKind(
    name="video_llm", families=("smolvlm",), runner=VideoLLMRunner, plan=plan, min_frames=1,
    description="video-LLM on frames sampled from the clip + the video's metadata and speech",
)
