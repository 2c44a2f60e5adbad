"""Checks of the `transcripts` asset, evaluated per shard right after it is written."""

from panda_dagster.common.checks import shard_check_specs
from panda_dagster.lib.transcripts.checks import check_asr_cues, check_failed_share, check_one_transcript_per_video

TRANSCRIPTS_CHECK_SPECS = shard_check_specs(
    "transcripts",
    blocking={
        "one_transcript_per_video": "Every video of the shard has exactly one `transcripts` row (ok, no_speech, "
        "no_audio, failed or skipped_subtitles)",
        "asr_cues_valid": "ASR cues (subtitles part asr) have text, lie inside their audio and match the "
        "transcript's cue count",
    },
    warning={"transcripts_mostly_succeed": "At most 20 % of the videos sent to ASR failed"},
)
WARNING_CHECKS = ("transcripts_mostly_succeed",)


def evaluate_transcripts_checks(video_ids, cues, transcripts, selected: set[str]):
    outcomes = []
    if "one_transcript_per_video" in selected:
        outcomes.append(check_one_transcript_per_video(video_ids, transcripts))
    if "asr_cues_valid" in selected:
        outcomes.append(check_asr_cues(cues, transcripts))
    if "transcripts_mostly_succeed" in selected:
        outcomes.append(check_failed_share(transcripts))
    return outcomes
