"""Fine-tune the caption scorer on human choices, and keep versioned selection-model checkpoints.

Objective per batch of labelled clips (clip embedding = normalised mean of key-frame embeddings):
- listwise: softmax over the clip's own candidates, cross-entropy towards the caption the person chose,
  i.e. the chosen caption must outscore the other candidates of the same clip;
- contrastive: the usual symmetric CLIP InfoNCE between clips and their chosen captions within the
  batch, which keeps the embedding space a retrieval space (identical captions are not negatives).
Clips labelled "all bad" carry no preference and are left out. Train/validation are split by video,
so no clip of a validation video is seen in training; selection accuracy (R@1 against the human
choice) is measured on validation for the base and the fine-tuned model.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from panda_dagster.lib.models.openclip import OpenClipModel, load_open_clip_checkpoint, model_spec
from panda_dagster.lib.selection.scorer import Candidate, CaptionScorer, ClipToScore, FramesLoader

SELECTION_MODELS_PREFIX = "models/selection"
CHECKPOINT_NAME = "scorer_state_dict.pt"
INFO_NAME = "info.json"


@dataclass
class PreferenceExample:
    clip_id: str
    video_id: str
    candidates: list[str]
    chosen_index: int
    keyframe_uris: list[str] = field(default_factory=list)
    frames: list[np.ndarray] | None = None  # decoded key frames; loaded through a FramesLoader if None

    def to_clip(self) -> ClipToScore:
        candidates = [Candidate(f"candidate_{i}", text) for i, text in enumerate(self.candidates)]
        return ClipToScore(self.clip_id, self.video_id, "", candidates, list(self.keyframe_uris), self.frames)


@dataclass(frozen=True)
class FinetuneConfig:
    """How the caption scorer is fine-tuned on human choices (`selection_model`)."""

    epochs: int = field(default=5, metadata={"help": "Passes over the training clips"})
    batch_size: int = field(default=32, metadata={"help": "Labelled clips per optimisation step"})
    # CLIP fine-tuning rate; a random-init tiny model needs ~1e-3.
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW peak rate (warm-up, then cosine decay)"})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay"})
    warmup_fraction: float = field(default=0.05, metadata={"help": "Share of the steps spent warming up"})
    contrastive_weight: float = field(default=0.5, metadata={"help": "Weight of the clip/caption InfoNCE term"})
    val_fraction: float = field(default=0.2, metadata={"help": "Share of labelled videos held out for validation"})
    seed: int = field(default=0, metadata={"help": "Seed of the split, the initialisation order and the batches"})
    # LiT-style partial unlocking keeps a ViT-L fine-tune within a 24 GB GPU; None trains the whole tower.
    unlocked_image_groups: int | None = field(default=4, metadata={
        "help": "Train only the last N groups of the image tower (null = all of it)"})
    unlocked_text_layers: int | None = field(default=4, metadata={
        "help": "Train only the last N text transformer layers (null = all of them)"})
    max_frames_per_clip: int = field(default=4, metadata={"help": "Key frames per clip used in training"})
    preprocessed_cache_mb: int = field(default=2048, metadata={
        "help": "Keep preprocessed frames in memory below this size (MB)"})


@dataclass
class FinetuneResult:
    state_dict: dict  # CPU tensors of the fine-tuned model
    base_val_accuracy: float | None  # R@1 against the human choice, None without validation clips
    tuned_val_accuracy: float | None
    chance_val_accuracy: float | None  # mean 1/n_candidates: what random picking scores
    n_train_clips: int
    n_val_clips: int
    n_train_videos: int
    n_val_videos: int
    history: list[dict]
    config: FinetuneConfig


def split_by_video(
    examples: Sequence[PreferenceExample], val_fraction: float, seed: int
) -> tuple[list[PreferenceExample], list[PreferenceExample]]:
    """Whole videos go to validation (at least one when there are two or more videos)."""
    videos = sorted({e.video_id for e in examples})
    order = np.random.default_rng(seed).permutation(len(videos))
    n_val = min(len(videos) - 1, max(1, round(val_fraction * len(videos)))) if len(videos) > 1 else 0
    val_videos = {videos[i] for i in order[:n_val]}
    train = [e for e in examples if e.video_id not in val_videos]
    val = [e for e in examples if e.video_id in val_videos]
    return train, val


def selection_accuracy(
    model: OpenClipModel, examples: Sequence[PreferenceExample], frames_loader: FramesLoader | None = None
) -> float | None:
    """Share of clips whose top-scored candidate is the caption the person chose (R@1)."""
    if not examples:
        return None
    scored, unscorable = CaptionScorer(model).score([e.to_clip() for e in examples], frames_loader)
    if unscorable:
        raise ValueError(f"{len(unscorable)} labelled clips cannot be scored, e.g. {unscorable[0].reason}")
    hits = 0
    for example, item in zip(examples, scored, strict=True):  # scored keeps the input order
        # Identical caption texts score identically: picking any copy of the chosen text is a hit.
        hits += example.candidates[int(item.ranking[0])] == example.candidates[example.chosen_index]
    return hits / len(scored)


def chance_accuracy(examples: Sequence[PreferenceExample]) -> float | None:
    if not examples:
        return None
    return float(np.mean([e.candidates.count(e.candidates[e.chosen_index]) / len(e.candidates) for e in examples]))


def _validate(examples: Sequence[PreferenceExample]) -> None:
    for e in examples:
        if not e.candidates or not 0 <= e.chosen_index < len(e.candidates):
            raise ValueError(f"clip {e.clip_id}: chosen_index {e.chosen_index} outside its {len(e.candidates)} candidates")


def finetune_scorer(
    base: OpenClipModel,
    examples: Sequence[PreferenceExample],
    config: FinetuneConfig = FinetuneConfig(),
    frames_loader: FramesLoader | None = None,
    log=None,
) -> FinetuneResult:
    """Fine-tune a copy of `base` (the loaded base model is left untouched) on labelled clips."""
    import torch
    import torch.nn.functional as F

    _validate(examples)
    train, val = split_by_video(examples, config.val_fraction, config.seed)
    if not train:
        raise ValueError("no training clips: fine-tuning needs labelled clips from at least two videos")
    device = base.device
    say = log or (lambda message: None)

    def frames_of(example: PreferenceExample) -> list[np.ndarray]:
        if example.frames is None and frames_loader is None:
            raise ValueError(f"clip {example.clip_id}: no frames given and no frames loader")
        frames = example.frames if example.frames is not None else frames_loader(example.to_clip())
        if not frames:
            raise ValueError(f"clip {example.clip_id}: no key frames")
        if len(frames) > config.max_frames_per_clip:  # evenly spaced subset keeps the clip's time span
            picks = np.linspace(0, len(frames) - 1, config.max_frames_per_clip).round().astype(int)
            frames = [frames[i] for i in picks]
        return frames

    # Preprocess once when it fits in memory (the image transform dominates small-model steps on CPU).
    side = int(base.model.visual.image_size[0] if isinstance(base.model.visual.image_size, tuple)
               else base.model.visual.image_size)
    estimated_mb = len(train) * config.max_frames_per_clip * 3 * side * side * 4 / 2**20
    cache: dict[str, torch.Tensor] | None = {} if estimated_mb <= config.preprocessed_cache_mb else None

    def pixels(example: PreferenceExample) -> torch.Tensor:
        if cache is not None and example.clip_id in cache:
            return cache[example.clip_id]
        tensor = base.image_tensor(frames_of(example))
        if cache is not None:
            cache[example.clip_id] = tensor
        return tensor

    base_val = selection_accuracy(base, val, frames_loader)
    say(f"base model: validation selection accuracy {base_val} on {len(val)} clips")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = copy.deepcopy(base.model).to(device)
        for p in model.parameters():
            p.requires_grad = True
        if config.unlocked_image_groups is not None:
            model.lock_image_tower(unlocked_groups=config.unlocked_image_groups)
        if config.unlocked_text_layers is not None:
            model.lock_text_tower(unlocked_layers=config.unlocked_text_layers)
        model.logit_scale.requires_grad = True
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]  # biases, norms, logit scale: no weight decay
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.learning_rate,
        )
        steps_per_epoch = math.ceil(len(train) / config.batch_size)
        total_steps = max(1, steps_per_epoch * config.epochs)
        warmup = max(1, int(config.warmup_fraction * total_steps))

        def lr_factor(step: int) -> float:  # linear warm-up, then cosine decay
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda")
                    else torch.autocast("cpu", enabled=False))
        rng = np.random.default_rng(config.seed)
        history = []
        tuned = OpenClipModel(base.arch, base.profile, device, model, base.preprocess, base.tokenizer,
                              spec=model_spec(base.arch, base.profile, "finetuning", "in-training"))
        for epoch in range(config.epochs):
            model.train()
            order = rng.permutation(len(train))
            losses = []
            for start in range(0, len(order), config.batch_size):
                batch = [train[i] for i in order[start : start + config.batch_size]]
                images = [pixels(e) for e in batch]
                counts = torch.tensor([len(x) for x in images], device=device)
                texts = [t for e in batch for t in e.candidates]
                unique_texts = sorted(set(texts))  # templated captions repeat: encode each text once
                text_slot = torch.tensor([unique_texts.index(t) for t in texts], device=device)
                owner = torch.repeat_interleave(torch.arange(len(batch)), torch.tensor([len(e.candidates) for e in batch]))
                offsets = np.cumsum([0] + [len(e.candidates) for e in batch])[:-1]
                chosen = torch.tensor([int(o) + e.chosen_index for o, e in zip(offsets, batch)], device=device)
                with autocast:
                    frame_emb = F.normalize(model.encode_image(torch.cat(images).to(device)).float(), dim=-1)
                    clip_index = torch.repeat_interleave(torch.arange(len(batch), device=device), counts)
                    clip_emb = torch.zeros(len(batch), frame_emb.shape[1], device=device).index_add(0, clip_index, frame_emb)
                    clip_emb = F.normalize(clip_emb, dim=-1)
                    unique_emb = model.encode_text(base.tokenize(unique_texts).to(device)).float()
                    text_emb = F.normalize(unique_emb, dim=-1)[text_slot]
                scale = model.logit_scale.exp().clamp(max=100).float()
                sim = scale * clip_emb @ text_emb.T
                own = owner.to(device)[None, :] == torch.arange(len(batch), device=device)[:, None]
                listwise = F.cross_entropy(sim.masked_fill(~own, float("-inf")), chosen)
                pair = scale * clip_emb @ text_emb[chosen].T
                chosen_text = [texts[i] for i in chosen.tolist()]
                same = torch.tensor([[a == b for b in chosen_text] for a in chosen_text], device=device)
                same.fill_diagonal_(False)
                pair = pair.masked_fill(same, float("-inf"))
                target = torch.arange(len(batch), device=device)
                contrastive = (F.cross_entropy(pair, target) + F.cross_entropy(pair.T, target)) / 2
                loss = listwise + config.contrastive_weight * contrastive
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                losses.append(float(loss.detach()))
            model.eval()
            val_acc = selection_accuracy(tuned, val, frames_loader)
            history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_accuracy": val_acc})
            say(f"epoch {epoch + 1}/{config.epochs}: train loss {np.mean(losses):.4f}, validation accuracy {val_acc}")
        model.eval()
        for p in model.parameters():
            p.requires_grad = False

    return FinetuneResult(
        state_dict={k: v.detach().float().cpu() for k, v in model.state_dict().items()},
        base_val_accuracy=base_val,
        tuned_val_accuracy=history[-1]["val_accuracy"] if history else base_val,
        chance_val_accuracy=chance_accuracy(val),
        n_train_clips=len(train),
        n_val_clips=len(val),
        n_train_videos=len({e.video_id for e in train}),
        n_val_videos=len({e.video_id for e in val}),
        history=history,
        config=config,
    )


# ---- versioned checkpoints -------------------------------------------------------------------------


@dataclass
class SelectionModelInfo:
    version: str  # sortable: UTC time of training + hash of the labels it saw
    profile: str  # models profile of the base (tiny/default/large): only that profile can load it
    base_model_name: str
    base_pretrained: str
    labels_sha: str
    n_labels: int
    base_val_accuracy: float | None
    tuned_val_accuracy: float | None
    chance_val_accuracy: float | None
    n_train_clips: int
    n_val_clips: int
    created_at: str
    config: dict
    history: list[dict]

    @property
    def checkpoint_key(self) -> str:
        return f"{SELECTION_MODELS_PREFIX}/{self.version}/{CHECKPOINT_NAME}"


def labels_fingerprint(examples: Sequence[PreferenceExample]) -> str:
    digest = hashlib.sha256()
    for e in sorted(examples, key=lambda e: e.clip_id):
        digest.update(json.dumps([e.clip_id, e.candidates, e.chosen_index]).encode())
    return digest.hexdigest()


def publish_selection_model(storage, base: OpenClipModel, result: FinetuneResult, labels_sha: str,
                            n_labels: int, now: dt.datetime | None = None) -> SelectionModelInfo:
    """Store checkpoint + info under a new version; the info file is written last (it marks completion)."""
    import tempfile
    from pathlib import Path

    import torch

    now = now or dt.datetime.now(dt.timezone.utc)
    info = SelectionModelInfo(
        version=f"{now:%Y%m%dT%H%M%S%fZ}-{labels_sha[:8]}", profile=base.profile,
        base_model_name=base.arch.model_name, base_pretrained=base.arch.pretrained, labels_sha=labels_sha,
        n_labels=n_labels, base_val_accuracy=result.base_val_accuracy, tuned_val_accuracy=result.tuned_val_accuracy,
        chance_val_accuracy=result.chance_val_accuracy, n_train_clips=result.n_train_clips,
        n_val_clips=result.n_val_clips, created_at=now.isoformat(), config=asdict(result.config),
        history=result.history,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / CHECKPOINT_NAME
        torch.save(result.state_dict, path)
        storage.put_file(info.checkpoint_key, path)
    storage.put_bytes(f"{SELECTION_MODELS_PREFIX}/{info.version}/{INFO_NAME}",
                      json.dumps(asdict(info), indent=1).encode())
    return info


def list_selection_models(storage, profile: str | None = None) -> list[SelectionModelInfo]:
    """Complete selection models, oldest first (optionally only those built on `profile`)."""
    infos = []
    for key in storage.list(SELECTION_MODELS_PREFIX):
        if key.endswith(f"/{INFO_NAME}"):
            info = SelectionModelInfo(**json.loads(storage.get_bytes(key)))
            if profile is None or info.profile == profile:
                infos.append(info)
    return sorted(infos, key=lambda i: i.version)


def latest_selection_model(storage, profile: str) -> SelectionModelInfo | None:
    infos = list_selection_models(storage, profile)
    return infos[-1] if infos else None


def load_selection_scorer(storage, info: SelectionModelInfo, device: str = "auto") -> CaptionScorer:
    model = load_open_clip_checkpoint(info.profile, storage.local_copy(info.checkpoint_key), device=device,
                                      variant="selection", revision=info.version)
    return CaptionScorer(model, version=info.version)
