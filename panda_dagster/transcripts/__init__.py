"""Stage: transcripts (speech recognition for videos without subtitles, before `clips`)."""
