"""Teacher throughput: clips/s per teacher and batch size with FULL-SIZE models of the default profile.

No weights are downloaded: each model is built from a config with the published dimensions of the
default-profile checkpoint and random weights, so the compute per clip is the real one. Generation length
is fixed (min_new_tokens = max_new_tokens) so runs are comparable. The timed path is the production one:
`engine.caption_shard` -> runner.prepare (frame decoding, in the prefetch thread) -> runner.generate.
For each teacher the largest batch size is also run without prefetching (frames decoded in the loop),
giving the overlap ratio in the same process.

    python benchmarks/teacher_bench.py                       # all default teachers, batch sizes 1,4,16
    python benchmarks/teacher_bench.py --teachers blip_keyframe --batch-sizes 1,4 --batches 2 --new-tokens 8
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from panda_dagster.lib.torch_compat import ensure_torchvision_importable  # noqa: E402

ensure_torchvision_importable()

import torch  # noqa: E402

from panda_dagster.lib.ids import clip_id  # noqa: E402
from panda_dagster.lib.teachers.engine import caption_shard  # noqa: E402
from panda_dagster.lib.teachers.inputs import ClipInput, VideoInput  # noqa: E402
from panda_dagster.lib.teachers.registry import load_registry  # noqa: E402
from panda_dagster.lib.models.device import resolve_device, resolve_dtype  # noqa: E402
from panda_dagster.lib.teachers.kinds.image import ImageCaptionRunner  # noqa: E402
from panda_dagster.lib.teachers.kinds.text_llm import TextLLMRunner  # noqa: E402
from panda_dagster.lib.teachers.kinds.video_llm import VideoLLMRunner  # noqa: E402
from panda_dagster.lib.teachers.tiny import ensure_tiny_model  # noqa: E402


# ---- full-size configs (dimensions of the default profile's checkpoints) -------------------------

def blip_large(tok):
    """Salesforce/blip-image-captioning-large: ViT-L/16 @384 + BERT-base decoder."""
    from transformers import BlipConfig, BlipForConditionalGeneration

    vocab = tok.get_vocab()
    cfg = BlipConfig(
        vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                           image_size=384, patch_size=16),
        text_config=dict(vocab_size=30524, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                         num_attention_heads=12, encoder_hidden_size=1024, max_position_embeddings=512,
                         bos_token_id=vocab["[DEC]"], sep_token_id=vocab["[SEP]"], pad_token_id=vocab["[PAD]"],
                         eos_token_id=vocab["[SEP]"]),
    )
    return BlipForConditionalGeneration, cfg, {"size": {"height": 384, "width": 384}}


def git_large(tok):
    """microsoft/git-large-coco: CLIP ViT-L/14 @224 + 6-layer BERT-base-width decoder."""
    from transformers import GitConfig, GitForCausalLM

    vocab = tok.get_vocab()
    cfg = GitConfig(
        vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                           image_size=224, patch_size=14, projection_dim=768),
        vocab_size=30522, hidden_size=768, intermediate_size=3072, num_hidden_layers=6, num_attention_heads=12,
        max_position_embeddings=1024, bos_token_id=vocab["[CLS]"], eos_token_id=vocab["[SEP]"],
        pad_token_id=vocab["[PAD]"],
    )
    return GitForCausalLM, cfg, {"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}}


def smolvlm2_2b(tok):
    """HuggingFaceTB/SmolVLM2-2.2B-Instruct: SigLIP so400m/14 @384, pixel shuffle x3, SmolLM2-1.7B."""
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration

    ids = tok.get_vocab()
    cfg = SmolVLMConfig(
        vision_config=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                           image_size=384, patch_size=14),
        text_config=dict(model_type="llama", vocab_size=49280, hidden_size=2048, intermediate_size=8192,
                         num_hidden_layers=24, num_attention_heads=32, num_key_value_heads=32,
                         max_position_embeddings=16384, pad_token_id=ids["<|endoftext|>"],
                         bos_token_id=ids["<|im_start|>"], eos_token_id=ids["<end_of_utterance>"]),
        scale_factor=3, image_token_id=ids["<image>"], pad_token_id=ids["<|endoftext|>"],
    )
    return SmolVLMForConditionalGeneration, cfg, {"image_seq_len": (384 // 14) ** 2 // 9, "longest_edge": 384}


def qwen25_3b(tok):
    """Qwen/Qwen2.5-3B-Instruct."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    ids = tok.get_vocab()
    cfg = Qwen2Config(
        vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
        num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True,
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )
    return Qwen2ForCausalLM, cfg, {}


FULL_SIZE = {"blip": blip_large, "git": git_large, "smolvlm": smolvlm2_2b, "qwen2": qwen25_3b}
RUNNERS = {"image": ImageCaptionRunner, "video_llm": VideoLLMRunner, "text_llm": TextLLMRunner}


def build_runner(spec, device: str, dtype):
    """Full-size random-weight model + the tiny twin's tokenizer/processor resized to the real inputs."""
    from transformers import AutoProcessor, AutoTokenizer

    tiny_dir = ensure_tiny_model(f"tiny/{spec.family}")
    if spec.kind == "text_llm":
        processor, tok = None, AutoTokenizer.from_pretrained(tiny_dir)
    else:
        processor = AutoProcessor.from_pretrained(tiny_dir)
        tok = processor.tokenizer
    model_cls, cfg, sizes = FULL_SIZE[spec.family](tok)
    if processor is not None and spec.family == "smolvlm":
        processor.image_seq_len = sizes["image_seq_len"]
        processor.image_processor.size = {"longest_edge": sizes["longest_edge"]}
        processor.image_processor.max_image_size = {"longest_edge": sizes["longest_edge"]}
    elif processor is not None:
        for key, value in sizes.items():
            setattr(processor.image_processor, key, value)
    t0 = time.perf_counter()
    with torch.device("meta"):
        model = model_cls(cfg)
    # Built on the meta device and filled in place: a 3B model's default init takes minutes on CPU.
    model = model.to_empty(device=device).to(dtype)
    model.tie_weights()  # to_empty unties shared embeddings
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1:  # norms and biases
                param.fill_(1.0 if "norm" in name.lower() else 0.0)
            else:
                param.normal_(0.0, 0.02)
    # Rotary / position buffers are computed in __init__ on meta: rebuild them on the real device.
    for module in model.modules():
        if hasattr(module, "inv_freq") and hasattr(module, "rope_init_fn"):
            inv_freq, scaling = module.rope_init_fn(module.config, device)
            module.register_buffer("inv_freq", inv_freq, persistent=False)
            module.original_inv_freq = inv_freq
            module.attention_scaling = scaling
        if hasattr(module, "position_ids") and isinstance(module.position_ids, torch.Tensor):
            n = module.position_ids.shape[-1]
            module.register_buffer("position_ids", torch.arange(n, device=device).expand((1, -1)), persistent=False)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    build_s = time.perf_counter() - t0
    components = {"model": model}
    if processor is not None:
        components["processor"] = processor
    else:
        components["tokenizer"] = tok
    runner = RUNNERS[spec.kind].from_loaded(spec, device, dtype, **components)
    return runner, n_params, build_s


# ---- inputs ---------------------------------------------------------------------------------------

def make_inputs(workdir: Path, n_clips: int, clip_s: float = 4.0):
    import imageio_ffmpeg

    ff = imageio_ffmpeg.get_ffmpeg_exe()
    duration = n_clips * clip_s
    video = workdir / "bench.mp4"
    subprocess.run([ff, "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size=1280x720:rate=25:duration={duration}", "-c:v", "libx264", "-preset", "veryfast",
                    "-pix_fmt", "yuv420p", "-g", "50", str(video)], check=True)
    # Key frames as the clips stage stores them: JPEGs at 1/4 and 3/4 of each clip.
    frames_dir = workdir / "keyframes"
    frames_dir.mkdir()
    subprocess.run([ff, "-y", "-loglevel", "error", "-i", str(video), "-vf", f"fps={2 / clip_s}",
                    "-q:v", "3", str(frames_dir / "k_%05d.jpg")], check=True)
    keyframes = sorted(frames_dir.glob("k_*.jpg"))
    clips = []
    for i in range(n_clips):
        start, end = i * clip_s, (i + 1) * clip_s
        keys = tuple(str(k) for k in keyframes[2 * i: 2 * i + 2])
        clips.append(ClipInput(clip_id("bench", start, end), "bench", start, end, keys))
    description = ("A long description of the video with the kind of detail uploaders write: what happens, "
                   "where it was filmed, links and thanks. ") * 4
    videos = {"bench": VideoInput("bench", str(video), "Benchmark test pattern video", description, False, duration)}
    from panda_dagster.lib.records import Cue

    cues = [Cue(t, t + 2.0, f"and now we explain step {int(t)} of the process in some detail", "bench")
            for t in range(0, int(duration), 2)]
    return clips, videos, cues


def run_one(runner, spec, clips, videos, cues, prefetch_depth: int):
    runner.spec = spec
    t0 = time.perf_counter()
    result = caption_shard("bench", [spec], clips, videos, cues, profile="default",
                           runner_factory=lambda s: runner, prefetch_depth=prefetch_depth)
    if runner.device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    stats = result.stats[0]
    # Random weights decode to noise that caption cleaning may reject: such clips were still fully
    # generated (fixed token count), so they count; only real errors (OOM at batch 1, unreadable input) do not.
    errors = [f for f in result.failures if f.reason.startswith(("out of memory", "input not readable",
                                                                 "generation failed"))]
    if errors:
        print(f"  ! {len(errors)} errors, first: {errors[0].reason}", file=sys.stderr)
    n = len(result.captions) + len(result.failures) - len(errors)
    return elapsed, n, n * spec.max_new_tokens, stats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teachers", default="blip_keyframe,git_keyframe,smolvlm2_video,qwen25_text")
    parser.add_argument("--batch-sizes", default="1,4,16")
    parser.add_argument("--batches", type=int, default=3, help="timed batches per batch size (after 1 warm-up)")
    parser.add_argument("--new-tokens", type=int, default=30, help="fixed number of generated tokens")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-frames", type=int, default=0, help="override the video-LLM's frames (0 = registry)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without frame prefetching")
    parser.add_argument("--warmup", type=int, default=1, help="untimed batches before each batch size")
    parser.add_argument("--dtype", default="", help="force a dtype (e.g. bfloat16 to halve memory on CPU)")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    registry = load_registry("default")
    torch.manual_seed(0)
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else None
    where = gpu or f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()})"
    print(f"device: {where}; torch {torch.__version__}; fixed {args.new_tokens} new tokens per clip")

    rows = []
    with tempfile.TemporaryDirectory(prefix="teacher-bench-") as tmp:
        n_clips = max(batch_sizes) * (args.batches + args.warmup)
        clips, videos, cues = make_inputs(Path(tmp), n_clips)
        for name in args.teachers.split(","):
            base = registry.teacher(name)
            dtype = getattr(torch, args.dtype) if args.dtype else resolve_dtype(base.dtype, device)
            override = {"min_new_tokens": args.new_tokens, "max_new_tokens": args.new_tokens, "generation": {}}
            if args.num_frames and base.kind == "video_llm":
                override["num_frames"] = args.num_frames
            spec0 = load_registry("default", {name: override}).teacher(name)
            runner, n_params, build_s = build_runner(spec0, device, dtype)
            print(f"{name}: {n_params / 1e6:.0f}M params built in {build_s:.1f}s ({dtype})", flush=True)
            for bs in batch_sizes:
                spec = load_registry("default", {name: {**override, "batch_size": bs}}).teacher(name)
                if args.warmup:
                    run_one(runner, spec, clips[: bs * args.warmup], videos, cues, 1)
                timed = clips[bs * args.warmup: bs * (args.batches + args.warmup)]
                variants = [("prefetch", 1)]
                if bs == max(batch_sizes) and not args.no_baseline:
                    variants.append(("no prefetch", 0))
                result = {}
                for label, depth in variants:
                    elapsed, n, tokens, stats = run_one(runner, spec, timed, videos, cues, depth)
                    result[label] = (elapsed, n, tokens, stats)
                elapsed, n, tokens, stats = result["prefetch"]
                row = {"teacher": name, "model (dims of)": base.model_id, "params_M": round(n_params / 1e6),
                       "dtype": str(dtype).replace("torch.", ""), "batch": bs, "clips": n,
                       "clips/s": n / elapsed, "tokens/s": tokens / elapsed, "oom_backoffs": stats.oom_events}
                if "no prefetch" in result:
                    row["overlap speedup"] = (result["no prefetch"][0] / elapsed)
                rows.append(row)
                print("  " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in row.items()), flush=True)
            del runner
            if device.startswith("cuda"):
                torch.cuda.empty_cache()

    cols = ["teacher", "model (dims of)", "params_M", "dtype", "batch", "clips", "clips/s", "tokens/s",
            "overlap speedup"]
    print(f"\nTeacher throughput on {where}, {args.new_tokens} generated tokens per clip\n")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [f"{r[c]:.3g}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
