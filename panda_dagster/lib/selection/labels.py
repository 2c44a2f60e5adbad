"""Human caption preferences: a self-contained labelling page, and CSV import into `caption_preferences`.

The page shows each clip's key frames and its candidate captions in a per-clip shuffled order with the
teacher hidden (so nobody learns to favour a model); a person picks the best caption or "all bad" and
downloads a CSV. Labels may also come from any other tool as a plain CSV: `clip_id` plus one of
`choice` (candidate id from the page, or ALL_BAD), `chosen_caption`, `chosen_teacher`, or `all_bad`.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import html
import io
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from panda_dagster.lib.selection.records import CaptionPreference
from panda_dagster.lib.selection.scorer import ClipToScore

ALL_BAD = "ALL_BAD"
CSV_COLUMNS = ["clip_id", "shard", "video_id", "choice", "chosen_caption", "all_bad", "annotator", "labelled_at", "page_id"]
FRAME_MAX_SIDE = 384  # key frames are re-encoded this small so a page of hundreds of clips stays light
_TRUE = {"1", "true", "yes", "y", "t", "x"}


def candidate_id(clip_id: str, caption: str) -> str:
    """Stable id of a candidate on the page: reveals nothing about the teacher."""
    return hashlib.sha1(f"{clip_id}\n{caption}".encode()).hexdigest()[:12]


# ---- export ------------------------------------------------------------------------------------------


def sample_for_labelling(
    clips: Sequence[ClipToScore], n: int | None, seed: int = 0, exclude: set[str] | frozenset[str] = frozenset()
) -> list[ClipToScore]:
    """Clips worth a human look (two or more candidates, key frames present), a seeded random sample."""
    eligible = [c for c in clips if len(c.candidates) >= 2 and c.keyframe_uris and c.clip_id not in exclude]
    random.Random(seed).shuffle(eligible)
    return eligible if n is None else eligible[:n]


def _thumbnail_data_uri(jpeg: bytes) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as image:
        image = image.convert("RGB")
        image.thumbnail((FRAME_MAX_SIDE, FRAME_MAX_SIDE))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=82)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


@dataclass
class LabelPage:
    path: Path
    page_id: str
    n_clips: int
    n_candidates: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (clip_id, reason)


def export_label_page(
    clips: Sequence[ClipToScore],
    read_keyframe: Callable[[str], bytes],
    out_path: Path | str,
    title: str = "Pick the best caption",
    seed: int = 0,
) -> LabelPage:
    """Write one HTML file (frames embedded) for labelling `clips`; clips whose frames fail are skipped."""
    items, skipped = [], []
    for clip in clips:
        try:
            frames = [_thumbnail_data_uri(read_keyframe(uri)) for uri in clip.keyframe_uris]
        except Exception as exc:  # a missing frame file costs that clip, not the page
            skipped.append((clip.clip_id, f"key frames unreadable: {type(exc).__name__}: {exc}"))
            continue
        texts = list(dict.fromkeys(c.caption for c in clip.candidates))  # identical texts shown once
        random.Random(f"{seed}:{clip.clip_id}").shuffle(texts)
        items.append({
            "clip_id": clip.clip_id, "shard": clip.shard, "video_id": clip.video_id, "frames": frames,
            "candidates": [{"id": candidate_id(clip.clip_id, t), "text": t} for t in texts],
        })
    page_id = hashlib.sha1(json.dumps([(i["clip_id"], [c["id"] for c in i["candidates"]]) for i in items]).encode()).hexdigest()[:12]
    payload = json.dumps({"page_id": page_id, "columns": CSV_COLUMNS, "all_bad": ALL_BAD, "clips": items})
    payload = payload.replace("</", "<\\/")  # never close the <script> element early
    document = _PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", payload)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(document, encoding="utf-8")
    return LabelPage(out_path, page_id, len(items), sum(len(i["candidates"]) for i in items), skipped)


# ---- import ------------------------------------------------------------------------------------------


@dataclass
class LabelRow:
    line: int  # CSV line number (header = 1), for error messages
    clip_id: str
    choice: str | None
    chosen_caption: str | None
    chosen_teacher: str | None
    all_bad: bool
    annotator: str | None
    labelled_at: dt.datetime | None


@dataclass
class LabelProblem:
    line: int
    clip_id: str
    reason: str


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def read_label_csv(data: bytes) -> tuple[list[LabelRow], list[LabelProblem]]:
    """Parse label CSV bytes (header names case-insensitive); rows without any choice are reported."""
    text = data.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise ValueError("label CSV is empty (no header row)")
    columns = {name.strip().lower(): name for name in reader.fieldnames if name}
    if "clip_id" not in columns:
        raise ValueError(f"label CSV needs a clip_id column; found {sorted(columns)}")
    if not {"choice", "chosen_candidate_id", "chosen_caption", "chosen_teacher", "all_bad"} & set(columns):
        raise ValueError("label CSV needs one of the columns choice, chosen_caption, chosen_teacher, all_bad")
    rows, problems = [], []
    for line, record in enumerate(reader, start=2):
        get = lambda name: _clean(record.get(columns[name])) if name in columns else None  # noqa: E731
        clip_id = get("clip_id")
        if not clip_id:
            problems.append(LabelProblem(line, "", "empty clip_id"))
            continue
        choice = get("choice") or get("chosen_candidate_id")
        all_bad = (get("all_bad") or "").lower() in _TRUE or (choice or "").upper() == ALL_BAD
        row = LabelRow(line, clip_id, None if all_bad else choice, get("chosen_caption"), get("chosen_teacher"),
                       all_bad, get("annotator"), _parse_time(get("labelled_at")))
        if not (row.all_bad or row.choice or row.chosen_caption or row.chosen_teacher):
            problems.append(LabelProblem(line, clip_id, "no choice made (row left unlabelled)"))
            continue
        rows.append(row)
    return rows, problems


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def _resolve_choice(row: LabelRow, clip: ClipToScore) -> tuple[int | None, str | None]:
    """Index of the chosen candidate, or a reason it cannot be resolved."""
    picks: list[set[int]] = []
    if row.choice:
        picks.append({i for i, c in enumerate(clip.candidates) if candidate_id(clip.clip_id, c.caption) == row.choice})
        if not picks[-1]:
            return None, f"choice {row.choice!r} is not a candidate id of this clip (captions changed since export?)"
    if row.chosen_caption:
        exact = {i for i, c in enumerate(clip.candidates) if c.caption == row.chosen_caption}
        picks.append(exact or {i for i, c in enumerate(clip.candidates)
                               if _normalise(c.caption) == _normalise(row.chosen_caption)})
        if not picks[-1]:
            return None, f"chosen caption is not one of the clip's {len(clip.candidates)} current candidates"
    if row.chosen_teacher:
        picks.append({i for i, c in enumerate(clip.candidates) if c.teacher == row.chosen_teacher})
        if not picks[-1]:
            return None, f"teacher {row.chosen_teacher!r} has no caption for this clip"
    agreed = set.intersection(*picks)
    if not agreed:
        return None, "choice, chosen_caption and chosen_teacher disagree"
    texts = {clip.candidates[i].caption for i in agreed}
    if len(texts) > 1:
        return None, "choice is ambiguous (matches several different captions)"
    return min(agreed), None


def label_batch_id(data: bytes) -> str:
    """Same file bytes -> same batch, so importing a file twice replaces instead of duplicating."""
    return "labels-" + hashlib.sha256(data).hexdigest()[:16]


def resolve_labels(
    rows: Sequence[LabelRow],
    clips_by_id: dict[str, ClipToScore],
    batch: str,
    source_file: str,
    default_annotator: str = "unknown",
) -> tuple[list[CaptionPreference], list[LabelProblem]]:
    """Check every label against the clip's current candidates; later rows of the same clip and
    annotator replace earlier ones (a person who changed their mind)."""
    kept: dict[tuple[str, str], CaptionPreference] = {}
    problems: list[LabelProblem] = []
    for row in rows:
        clip = clips_by_id.get(row.clip_id)
        if clip is None:
            problems.append(LabelProblem(row.line, row.clip_id, "unknown clip_id (not in the clips table)"))
            continue
        if not clip.candidates:
            problems.append(LabelProblem(row.line, row.clip_id, "clip has no candidate captions"))
            continue
        chosen = None
        if not row.all_bad:
            index, reason = _resolve_choice(row, clip)
            if reason:
                problems.append(LabelProblem(row.line, row.clip_id, reason))
                continue
            chosen = clip.candidates[index]
        annotator = row.annotator or default_annotator
        label_id = hashlib.sha1(f"{batch}\n{row.clip_id}\n{annotator}".encode()).hexdigest()[:16]
        kept[(row.clip_id, annotator)] = CaptionPreference(
            label_id=label_id, shard=clip.shard, label_batch=batch, clip_id=clip.clip_id, video_id=clip.video_id,
            chosen_caption=chosen.caption if chosen else None, chosen_teacher=chosen.teacher if chosen else None,
            all_bad=row.all_bad, candidates=[c.caption for c in clip.candidates],
            candidate_teachers=[c.teacher for c in clip.candidates], keyframe_uris=list(clip.keyframe_uris),
            annotator=annotator, source_file=source_file, labelled_at=row.labelled_at,
        )
    return list(kept.values()), problems


@dataclass
class LabelImport:
    batch: str
    n_rows: int
    stored: list[CaptionPreference]
    problems: list[LabelProblem]

    @property
    def n_all_bad(self) -> int:
        return sum(p.all_bad for p in self.stored)


def import_labels(catalog, path: Path | str, annotator: str | None = None) -> LabelImport:
    """Validate a label CSV against the catalog and store its valid rows in `caption_preferences`."""
    from panda_dagster.lib.selection.inputs import load_clips_by_id

    path = Path(path)
    data = path.read_bytes()
    rows, unparsed = read_label_csv(data)
    clips = load_clips_by_id(catalog, [r.clip_id for r in rows])
    batch = label_batch_id(data)
    stored, unresolved = resolve_labels(rows, clips, batch, path.name, annotator or "unknown")
    by_shard: dict[str, list[CaptionPreference]] = {}
    for pref in stored:
        by_shard.setdefault(pref.shard, []).append(pref)
    for shard, prefs in by_shard.items():
        catalog.replace_shard("caption_preferences", shard, prefs, part=batch)
    return LabelImport(batch, len(rows) + len(unparsed), stored, sorted(unparsed + unresolved, key=lambda p: p.line))


_PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f6;color:#222}
header{position:sticky;top:0;background:#222;color:#eee;padding:.6em 1em;display:flex;gap:1em;align-items:center;flex-wrap:wrap}
header input{padding:.3em}header button{padding:.35em .9em;cursor:pointer}
main{max-width:1100px;margin:1em auto;padding:0 1em}
.frames{display:flex;gap:.5em;overflow-x:auto}.frames img{max-height:220px;border-radius:4px}
.cand{display:block;width:100%;text-align:left;margin:.4em 0;padding:.7em;border:2px solid #ccc;border-radius:6px;background:#fff;font-size:1em;cursor:pointer}
.cand:hover{border-color:#888}.cand.chosen{border-color:#1a7f37;background:#e6f4ea}
.bad{border-style:dashed}.bad.chosen{border-color:#b42318;background:#fdecea}
.nav{display:flex;gap:.5em;margin:1em 0}.meta{color:#666;font-size:.85em}kbd{background:#eee;border:1px solid #bbb;border-radius:3px;padding:0 .3em}
</style></head><body>
<header><strong>__TITLE__</strong><span id="progress"></span>
<label>Annotator <input id="annotator" placeholder="your name"></label>
<button id="save">Save CSV</button><button id="clear">Clear my labels</button></header>
<main><p class="meta">Pick the caption that describes the clip best, or <em>all bad</em> if none is acceptable.
Keys: <kbd>1</kbd>-<kbd>9</kbd> choose, <kbd>x</kbd> all bad, <kbd>&larr;</kbd>/<kbd>&rarr;</kbd> previous/next.
Labels are kept in this browser until you save the CSV (then run <code>panda label import FILE.csv</code>).</p>
<div id="clip"></div>
<div class="nav"><button id="prev">&larr; Previous</button><button id="next">Next &rarr;</button>
<button id="nextOpen">Next unlabelled</button></div></main>
<script type="application/json" id="data">__DATA__</script>
<script>
const data = JSON.parse(document.getElementById('data').textContent);
const store = 'panda-labels-' + data.page_id;
let labels = JSON.parse(localStorage.getItem(store) || '{}');
let current = 0;
const annotator = document.getElementById('annotator');
annotator.value = localStorage.getItem('panda-annotator') || '';
annotator.onchange = () => localStorage.setItem('panda-annotator', annotator.value.trim());
function persist() { localStorage.setItem(store, JSON.stringify(labels)); }
function choose(choice, text) {
  const clip = data.clips[current];
  labels[clip.clip_id] = {choice: choice, text: text, at: new Date().toISOString()};
  persist(); if (current < data.clips.length - 1) current++; render();
}
function el(tag, attrs, text) { const e = document.createElement(tag); Object.assign(e, attrs || {}); if (text !== undefined) e.textContent = text; return e; }
function render() {
  const clip = data.clips[current], box = document.getElementById('clip'), label = labels[clip.clip_id];
  box.replaceChildren();
  box.appendChild(el('p', {className: 'meta'}, `Clip ${current + 1} of ${data.clips.length} · ${clip.clip_id}`));
  const frames = el('div', {className: 'frames'});
  clip.frames.forEach(src => frames.appendChild(el('img', {src: src, alt: 'key frame'})));
  box.appendChild(frames);
  clip.candidates.forEach((c, i) => {
    const b = el('button', {className: 'cand' + (label && label.choice === c.id ? ' chosen' : '')}, `${i + 1}. ${c.text}`);
    b.onclick = () => choose(c.id, c.text); box.appendChild(b);
  });
  const bad = el('button', {className: 'cand bad' + (label && label.choice === data.all_bad ? ' chosen' : '')}, 'x. All captions are bad');
  bad.onclick = () => choose(data.all_bad, ''); box.appendChild(bad);
  const done = data.clips.filter(c => labels[c.clip_id]).length;
  document.getElementById('progress').textContent = `${done} / ${data.clips.length} labelled`;
}
function csvCell(v) { v = String(v ?? ''); return /[",\n\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
document.getElementById('save').onclick = () => {
  const rows = [data.columns.join(',')];
  for (const clip of data.clips) {
    const l = labels[clip.clip_id]; if (!l) continue;
    const bad = l.choice === data.all_bad;
    const row = {clip_id: clip.clip_id, shard: clip.shard, video_id: clip.video_id, choice: l.choice,
      chosen_caption: bad ? '' : l.text, all_bad: bad ? 'true' : 'false', annotator: annotator.value.trim(),
      labelled_at: l.at, page_id: data.page_id};
    rows.push(data.columns.map(k => csvCell(row[k])).join(','));
  }
  const blob = new Blob([rows.join('\n') + '\n'], {type: 'text/csv'});
  const a = el('a', {href: URL.createObjectURL(blob), download: `caption_labels_${data.page_id}.csv`});
  document.body.appendChild(a); a.click(); a.remove();
};
document.getElementById('clear').onclick = () => { if (confirm('Forget every label made on this page?')) { labels = {}; persist(); render(); } };
document.getElementById('prev').onclick = () => { if (current > 0) { current--; render(); } };
document.getElementById('next').onclick = () => { if (current < data.clips.length - 1) { current++; render(); } };
document.getElementById('nextOpen').onclick = () => {
  const i = data.clips.findIndex(c => !labels[c.clip_id]); if (i >= 0) { current = i; render(); }
};
document.addEventListener('keydown', e => {
  if (e.target === annotator) return;
  const clip = data.clips[current];
  if (e.key >= '1' && e.key <= '9') { const c = clip.candidates[Number(e.key) - 1]; if (c) choose(c.id, c.text); }
  else if (e.key === 'x') choose(data.all_bad, '');
  else if (e.key === 'ArrowLeft') document.getElementById('prev').click();
  else if (e.key === 'ArrowRight') document.getElementById('next').click();
});
if (data.clips.length) render(); else document.getElementById('clip').textContent = 'No clips to label.';
</script></body></html>
"""
