"""The speech recogniser of the run's models profile (lib/transcripts/whisper.py), loaded once per process."""

from __future__ import annotations

from pydantic import Field

from panda_dagster.common.models import ModelProfileResource


class AsrModelResource(ModelProfileResource):
    """faster-whisper for the models profile: `choice()` says which weights without loading them, `model()`
    loads them through the one model cache (lib/models/cache.py)."""

    cpu_threads: int = Field(default=0, description="CPU threads of each recognition call (0 = the usable cores "
                             "shared among the calls)")
    workers: int = Field(default=0, description="Videos recognised at once (0 = one per usable core on CPU, at "
                         "most 4; 2 on CUDA)")

    def choice(self):
        from panda_dagster.lib.transcripts.whisper import asr_choice

        return asr_choice(self.profile_name)

    def locate(self):
        """(model directory, ModelSpec): id and exact revision, checked (sha256) but not loaded."""
        from panda_dagster.lib.transcripts.whisper import locate

        return locate(self.choice())

    def model(self):
        from panda_dagster.lib.transcripts.whisper import load_asr

        return load_asr(self.profile_name, self.resolved_device, self.cpu_threads, self.workers)
