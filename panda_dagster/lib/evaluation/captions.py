"""Caption metrics against reference captions: BLEU-1..4, METEOR, ROUGE-L and CIDEr (pycocoevalcap).

These are the numbers of Panda-70M's captioning table. SPICE is left out: it needs a Stanford CoreNLP
model download at run time, which an offline pipeline cannot do.

Everything runs offline: PTB tokenisation uses the Stanford CoreNLP jar and METEOR its own jar, both
shipped inside the pycocoevalcap wheel, through a local Java. Two deliberate differences from
pycocoevalcap's own wrappers: the tokenizer's temporary file goes to a temp folder (the wrapper writes
next to the jar, which fails on a read-only install), and the METEOR Java process is closed explicitly
when scoring ends instead of whenever the garbage collector gets to it.

CIDEr weighs n-grams by their document frequency among the references of the *scored set*, so its
value depends on the set: compare sources on the same items (which `score_caption_sources` does).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
# Panda-70M's caption table; higher is better for every one of them.
PTB_PUNCTUATION = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":",
                             "-", "--", "...", ";"])


class CaptionMetricsError(RuntimeError):
    """The metrics cannot run here (no Java, pycocoevalcap missing, a Java process failed)."""


def _package_dir() -> Path:
    import importlib.util

    # pycocoevalcap is a namespace package (no __init__.py): locate it through a module inside it.
    spec = importlib.util.find_spec("pycocoevalcap.bleu.bleu")
    if spec is None or spec.origin is None:
        raise CaptionMetricsError("pycocoevalcap is not installed (pip install pycocoevalcap==1.2)")
    return Path(spec.origin).resolve().parent.parent


def java_executable() -> str:
    java = shutil.which("java")
    if java is None:
        raise CaptionMetricsError("caption metrics need a Java runtime (`java` on PATH) for PTB tokenisation and METEOR")
    return java


def _single_line(text: str) -> str:
    return " ".join(str(text).split())


def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
    """Lower-cased PTB tokens joined by spaces, punctuation removed (as the COCO caption evaluation does)."""
    if not sentences:
        return []
    jar = _package_dir() / "tokenizer" / "stanford-corenlp-3.4.1.jar"
    if not jar.is_file():
        raise CaptionMetricsError(f"Stanford CoreNLP jar missing from pycocoevalcap: {jar}")
    # -preserveLines keeps one output line per input line; an empty input line would vanish in the
    # count, so empty sentences are tokenized as a placeholder and mapped back to "".
    lines = [_single_line(s) for s in sentences]
    placeholder = "emptysentenceplaceholder"
    with tempfile.TemporaryDirectory(prefix="panda-ptb-") as tmp:
        src = Path(tmp) / "sentences.txt"
        src.write_text("\n".join(line or placeholder for line in lines), encoding="utf-8")
        proc = subprocess.run(
            [java_executable(), "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines",
             "-lowerCase", str(src)],
            capture_output=True, timeout=600,
        )
    if proc.returncode != 0:
        raise CaptionMetricsError(f"PTB tokenizer failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-500:]}")
    out = proc.stdout.decode("utf-8", errors="replace").split("\n")
    if len(out) < len(lines):
        raise CaptionMetricsError(f"PTB tokenizer returned {len(out)} lines for {len(lines)} sentences")
    tokenized = []
    for original, line in zip(lines, out):
        if not original:
            tokenized.append("")
            continue
        tokenized.append(" ".join(w for w in line.rstrip().split(" ") if w and w not in PTB_PUNCTUATION))
    return tokenized


class MeteorProcess:
    """pycocoevalcap's METEOR scorer whose Java process is closed by `close()` / the `with` block."""

    def __init__(self):
        java_executable()
        _package_dir()
        from pycocoevalcap.meteor.meteor import Meteor

        self._meteor = Meteor()
        # Fail now, with the reason, if the JVM died at start-up (e.g. not enough memory for -Xmx2G).
        if self._meteor.meteor_p.poll() is not None:
            err = self._meteor.meteor_p.stderr.read().decode(errors="replace")[-500:]
            self.close()
            raise CaptionMetricsError(f"METEOR Java process exited at start: {err}")

    def compute_score(self, gts, res):
        return self._meteor.compute_score(gts, res)

    @property
    def pid(self) -> int:
        return self._meteor.meteor_p.pid

    def close(self) -> None:
        proc = self._meteor.meteor_p
        if proc.returncode is None:
            try:
                proc.stdin.close()  # METEOR's -stdio loop ends at end of input
                proc.wait(timeout=5)
            except (subprocess.TimeoutExpired, OSError):
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()

    @property
    def closed(self) -> bool:
        return self._meteor.meteor_p.returncode is not None

    def __enter__(self) -> MeteorProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class CaptionScores:
    corpus: dict[str, float]  # metric -> corpus-level score (BLEU is corpus BLEU, others are means)
    per_item: pd.DataFrame  # item, metric columns (BLEU per item is the sentence-level BLEU)
    n_items: int = 0
    tokenized: dict[str, tuple[str, list[str]]] = field(default_factory=dict)


def score_captions(candidates: Mapping[str, str], references: Mapping[str, Sequence[str]],
                   meteor: MeteorProcess | None = None) -> CaptionScores:
    """Score one candidate caption per item against that item's reference captions.

    Items are the keys of `candidates`; each needs at least one reference. Scores are in [0, 1] except
    CIDEr (0..10; scaled as in the COCO evaluation, so x100 is what papers print for every metric).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    items = sorted(candidates)
    if not items:
        raise ValueError("no candidate captions to score")
    missing = [i for i in items if not references.get(i)]
    if missing:
        raise ValueError(f"{len(missing)} items have no reference caption, e.g. {missing[:3]}")
    flat = [candidates[i] for i in items]
    counts = [len(references[i]) for i in items]
    for i in items:
        flat.extend(references[i])
    tokens = ptb_tokenize(flat)
    res: dict[str, list[str]] = {}
    gts: dict[str, list[str]] = {}
    pos = len(items)
    for item, count, cand in zip(items, counts, tokens[: len(items)]):
        res[item] = [cand]
        gts[item] = tokens[pos: pos + count]
        pos += count

    corpus: dict[str, float] = {}
    per_item: dict[str, list[float]] = {}
    bleu, bleu_items = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        corpus[f"BLEU-{n + 1}"] = float(bleu[n])
        per_item[f"BLEU-{n + 1}"] = [float(x) for x in bleu_items[n]]
    own_meteor = meteor is None
    meteor = meteor or MeteorProcess()
    try:
        m, m_items = meteor.compute_score(gts, res)
    finally:
        if own_meteor:
            meteor.close()
    corpus["METEOR"], per_item["METEOR"] = float(m), [float(x) for x in m_items]
    r, r_items = Rouge().compute_score(gts, res)
    corpus["ROUGE-L"], per_item["ROUGE-L"] = float(r), [float(x) for x in r_items]
    c, c_items = Cider().compute_score(gts, res)
    corpus["CIDEr"], per_item["CIDEr"] = float(c), [float(x) for x in c_items]
    table = pd.DataFrame({"item": items, **per_item})
    for name, value in corpus.items():
        if math.isnan(value):
            raise CaptionMetricsError(f"{name} came out NaN")
    return CaptionScores(corpus, table, len(items), {i: (res[i][0], gts[i]) for i in items})


@dataclass
class SourceComparison:
    table: pd.DataFrame  # index: source; columns: METRICS + n_items + coverage
    best: dict[str, str]  # metric -> best source
    best_overall: str | None  # best by CIDEr (the metric Panda-70M's ranking leans on), None if no source
    n_items: int
    per_item: dict[str, pd.DataFrame]
    skipped: dict[str, str] = field(default_factory=dict)  # source -> why it was not scored


def score_caption_sources(sources: Mapping[str, Mapping[str, str]], references: Mapping[str, Sequence[str]],
                          min_coverage: float = 0.5) -> SourceComparison:
    """Score several caption sources (each teacher, the selected captions) on the items all of them cover.

    Sources are scored on the same items so that CIDEr's document frequencies, and the difficulty of
    the items, are the same for all of them. Items without a reference are ignored; empty captions
    count as missing. A source covering less than `min_coverage` of the referenced items (e.g. a teacher
    that failed on most clips) is skipped with the reason instead of shrinking everyone's item set.
    """
    ref_items = {i for i, refs in references.items() if refs and any(str(r).strip() for r in refs)}
    covered = {name: {i for i, c in caps.items() if i in ref_items and c and str(c).strip()}
               for name, caps in sources.items()}
    skipped = {name: f"captions {len(items)} of {len(ref_items)} referenced clips (< {min_coverage:.0%})"
               for name, items in covered.items() if len(items) < min_coverage * len(ref_items)}
    kept = {name: items for name, items in covered.items() if name not in skipped}
    common = set.intersection(*kept.values()) if kept else set()
    if not common:
        raise ValueError("no item has a reference and a caption from every source"
                         + (f" (skipped: {skipped})" if skipped else ""))
    refs = {i: [str(r) for r in references[i] if str(r).strip()] for i in common}
    rows, per_item = {}, {}
    with MeteorProcess() as meteor:  # one JVM for every source
        for name, caps in sources.items():
            if name in skipped:
                continue
            scores = score_captions({i: str(caps[i]) for i in common}, refs, meteor=meteor)
            rows[name] = {**scores.corpus, "n_items": scores.n_items,
                          "coverage": len(covered[name]) / max(1, len(ref_items))}
            per_item[name] = scores.per_item
    table = pd.DataFrame.from_dict(rows, orient="index")[[*METRICS, "n_items", "coverage"]]
    table.index.name = "source"
    best = {m: str(table[m].idxmax()) for m in METRICS}
    return SourceComparison(table, best, best.get("CIDEr"), len(common), per_item, skipped)


def java_available() -> bool:
    try:
        java_executable()
        return True
    except CaptionMetricsError:
        return False


def _pid_alive(pid: int) -> bool:  # used by tests to prove METEOR's JVM is gone
    from panda_dagster.lib.processes import process_alive  # a zombie counts as gone

    return process_alive(pid)


# ---- reference captions from the catalog ---------------------------------------------------------


def _span_references(spans: Sequence[Mapping], start: float, end: float) -> list[str]:
    """References of the annotated span that best overlaps [start, end] (temporal IoU >= 0.5)."""
    best, best_iou = None, 0.5
    for span in spans:
        try:
            s, e = float(span["start_s"]), float(span["end_s"])
        except (KeyError, TypeError, ValueError):
            continue
        inter = max(0.0, min(e, end) - max(s, start))
        union = max(e, end) - min(s, start)
        iou = inter / union if union > 0 else 0.0
        if iou >= best_iou:
            best, best_iou = span, iou
    if best is None:
        return []
    texts = best.get("captions") or best.get("references") or best.get("text") or []
    if isinstance(texts, str):
        texts = [texts]
    return [str(t).strip() for t in texts if str(t).strip()]


def clip_references(clips: pd.DataFrame, videos: pd.DataFrame) -> dict[str, list[str]]:
    """Reference captions per clip of an evaluation set.

    A manifest's `references` column ends up in `videos.metadata_json["references"]`: either a list of
    sentences for the whole video (MSR-VTT style; every clip of the video is scored against them), or a
    list of `{start_s, end_s, captions}` spans (each clip takes the span it overlaps best, IoU >= 0.5).
    A `references` column on the clips themselves, when present, wins.
    """
    refs: dict[str, list[str]] = {}
    by_video: dict[str, object] = {}
    if not videos.empty and "metadata_json" in videos:
        for vid, meta in zip(videos["video_id"], videos["metadata_json"]):
            if not meta:
                continue
            try:
                value = json.loads(meta).get("references")
            except (json.JSONDecodeError, AttributeError):
                continue
            if value:
                by_video[vid] = value
    for row in clips.itertuples(index=False):
        own = getattr(row, "references", None)
        if own is not None and len(own):
            refs[row.clip_id] = [str(t) for t in own if str(t).strip()]
            continue
        value = by_video.get(row.video_id)
        if not value:
            continue
        if all(isinstance(v, Mapping) for v in value):
            found = _span_references(value, float(row.start_s), float(row.end_s))
        else:
            found = [str(t).strip() for t in value if str(t).strip()]
        if found:
            refs[row.clip_id] = found
    return refs


def caption_sources(teacher_captions: pd.DataFrame, selected: pd.DataFrame) -> dict[str, dict[str, str]]:
    """{'selected': {clip: caption}, 'teacher:<name>': {clip: caption}, ...} from the catalog tables."""
    sources: dict[str, dict[str, str]] = {}
    if not selected.empty:
        sources["selected"] = {c: str(t) for c, t in zip(selected["clip_id"], selected["caption"]) if t and str(t).strip()}
    if not teacher_captions.empty:
        for name, group in teacher_captions.groupby("teacher"):
            sources[f"teacher:{name}"] = {c: str(t) for c, t in zip(group["clip_id"], group["caption"])
                                          if t and str(t).strip()}
    return {k: v for k, v in sources.items() if v}


def reference_metrics(clips: pd.DataFrame, videos: pd.DataFrame, teacher_captions: pd.DataFrame,
                      selected: pd.DataFrame):
    """Metrics of every caption source against the shard's references; ([], None) when it has none.

    Returns (list of stats.Metric, SourceComparison or None).
    """
    from panda_dagster.lib.evaluation.stats import Metric

    refs = clip_references(clips, videos)
    if not refs:
        return [], None
    sources = caption_sources(teacher_captions, selected)
    if not sources:
        return [Metric("references.items", float(len(refs)), {"error": "no captions to score"})], None
    comparison = score_caption_sources(sources, refs)
    out = [Metric("references.items", float(comparison.n_items),
                  {"clips_with_references": len(refs), "scored_on_common_items": comparison.n_items,
                   "sources": list(comparison.table.index), "skipped_sources": comparison.skipped,
                   "spice": "not computed (needs a model download)"})]
    for source, row in comparison.table.iterrows():
        for metric in METRICS:
            out.append(Metric(f"references.{source}.{metric}", float(row[metric]),
                              {"coverage": float(row["coverage"])} if metric == "CIDEr" else None))
    out.append(Metric("references.best.CIDEr", float(comparison.table.loc[comparison.best_overall, "CIDEr"]),
                      {"source": comparison.best_overall, "best_by_metric": comparison.best,
                       "table": comparison.table.reset_index().to_dict(orient="records")}))
    return out, comparison
