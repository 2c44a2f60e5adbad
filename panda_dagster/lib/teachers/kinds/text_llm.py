"""Kind `text_llm`: an instruction LLM (any causal LM with a chat template) that turns the video's title,
description and the words spoken during the clip into one caption."""

from __future__ import annotations

from collections.abc import Sequence

from panda_dagster.lib.teachers.kinds import PlanContext, PlannedRequest, TeacherKind, request_for
from panda_dagster.lib.teachers.prompts import prompt_sha, text_llm_messages
from panda_dagster.lib.teachers.registry import TeacherSpec
from panda_dagster.lib.teachers.runners import Generation, Prepared, TeacherRequest, TeacherRunner, special_token_ids


def plan(spec: TeacherSpec, ctx: PlanContext) -> PlannedRequest:
    return PlannedRequest(request_for(ctx, prompt_sha(ctx.fingerprint, ctx.prompt, None)))


class TextLLMRunner(TeacherRunner):
    """Instruction LLM that turns title + description + the clip's speech into one caption."""

    def __init__(self, spec: TeacherSpec, device: str = "auto", s3_client=None):
        super().__init__(spec, device, s3_client)
        hf = self.transformers()
        self.tokenizer = self.load_pretrained(hf.AutoTokenizer)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = self.load_weights(hf.AutoModelForCausalLM)
        self.special_ids = special_token_ids(self.tokenizer)

    def build_chat(self, request: TeacherRequest) -> str:
        messages = text_llm_messages(request.prompt, self.spec.system_prompt)
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def prepare(self, request: TeacherRequest) -> Prepared:
        return Prepared(request, self.tokenizer(self.build_chat(request), add_special_tokens=False)["input_ids"])

    def generate(self, batch: Sequence[Prepared]) -> list[Generation]:
        import torch

        enc = self.tokenizer.pad({"input_ids": [item.payload for item in batch]}, padding=True,
                                 return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self.model.generate(**enc, **self._generate_kwargs(), pad_token_id=self.tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        decoded = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [Generation([text], self.count_tokens(ids)) for text, ids in zip(decoded, new)]

    def close(self) -> None:
        self.model = None


KIND = TeacherKind(
    name="text_llm", families=("qwen2",), runner=TextLLMRunner, plan=plan,
    description="instruction LLM over title, description and the clip's speech",
)
