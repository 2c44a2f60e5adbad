"""Which sentence embedder the evaluation uses, if any.

Only the `offline` profile ships one (the packaged all-MiniLM-L6-v2, `lib/models`); there it measures
near-duplicate captions and encodes the HowTo100M benchmark's texts. Other profiles have none: the
near-duplicate metrics are skipped with the reason, and the benchmark uses open_clip's text tower.
"""

from __future__ import annotations

SENTENCE_PROFILES = ("offline",)


def load_sentence_embedder(profile: str, device: str = "auto"):
    """(embedder, None), or (None, why there is none) for this models profile."""
    if profile not in SENTENCE_PROFILES:
        return None, f"models profile {profile!r} has no sentence embedder (the offline profile has MiniLM)"
    from panda_dagster.lib.models.minilm import load_minilm
    from panda_dagster.lib.models.packaged import PackagedWeightsError

    try:
        return load_minilm(device), None
    except PackagedWeightsError as exc:  # the profile names it, but its package is missing or changed
        return None, str(exc)
