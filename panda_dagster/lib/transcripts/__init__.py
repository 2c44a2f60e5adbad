"""Speech recognition for videos without subtitles (the `transcripts` stage): faster-whisper, word
timestamps, voice-activity filtering, language detection. Library code: no Dagster, no catalog writes."""
