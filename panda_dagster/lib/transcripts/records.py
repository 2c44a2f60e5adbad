"""Row of the `transcripts` table: one per video the stage looked at (also when it found no speech or
failed), so a re-run knows which model and revision already transcribed it. The cues themselves go into
the one `subtitles` table, part `asr`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from panda_dagster.lib.records import utcnow

# Transcript statuses.
OK = "ok"  # speech recognised: n_cues > 0
NO_SPEECH = "no_speech"  # audio decoded, nothing recognised (or all of it filtered as non-speech)
NO_AUDIO = "no_audio"  # the file has no audio stream
FAILED = "failed"  # the audio did not decode or the model raised on it; retried by the next run
SKIPPED = "skipped_subtitles"  # the video has subtitles (not transcribed unless the config forces it)
STATUSES = (OK, NO_SPEECH, NO_AUDIO, FAILED, SKIPPED)


@dataclass
class Transcript:
    video_id: str
    shard: str
    model_id: str  # e.g. Systran/faster-whisper-small
    revision: str  # commit loaded from the HF cache, or pypi:<package>==<version>@<digest> when packaged
    status: str  # one of STATUSES
    settings_sha: str = ""  # hash of the recognition settings (beam, VAD, cue sizes): part of the reuse key
    reason: str | None = None  # why no cues (human-readable)
    language: str | None = None  # detected (or forced) language code
    language_probability: float | None = None
    n_cues: int = 0
    n_words: int = 0
    duration_s: float = 0.0  # audio seconds
    speech_s: float = 0.0  # audio seconds left after voice-activity filtering
    latency_ms: float = 0.0  # decode + recognition wall time
    trained: bool = True  # False only for a random-weight model (outputs not meaningful)
    models_label: str = ""  # what reports print next to outputs of this model
    created_at: dt.datetime = field(default_factory=utcnow)
