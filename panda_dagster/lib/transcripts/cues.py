"""Recognised words -> subtitle-sized cues, and the word error rate used to measure them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    """A timed piece of recognised text: one word, or one cue made of words."""

    start_s: float
    end_s: float
    text: str


def group_words(words: Sequence[Segment], max_s: float = 4.0, max_words: int = 12,
                max_gap_s: float = 0.8) -> list[Segment]:
    """Word timestamps -> subtitle-sized cues: a new cue after a pause, a sentence end, or when the
    current one gets long."""
    cues: list[Segment] = []
    current: list[Segment] = []

    def flush():
        if current:
            cues.append(Segment(current[0].start_s, current[-1].end_s, " ".join(w.text for w in current)))
            current.clear()

    for word in words:
        if current and (word.start_s - current[-1].end_s > max_gap_s or word.end_s - current[0].start_s > max_s
                        or len(current) >= max_words):
            flush()
        current.append(word)
        if word.text.endswith((".", "?", "!")):
            flush()
    flush()
    return cues


_NUMBER_WORDS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
                 "7": "seven", "8": "eight", "9": "nine", "10": "ten"}


def normalise_words(text: str) -> list[str]:
    """Lower-case words without punctuation or markup (`<u>`), small numbers spelled out, for WER."""
    text = re.sub(r"<[^>]+>", " ", text.lower())
    text = text.replace("'", "").replace("\u2019", "")
    words = re.findall(r"[a-z0-9]+", text)
    return [_NUMBER_WORDS.get(w, w) for w in words]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, on normalised words."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1] / len(ref)
