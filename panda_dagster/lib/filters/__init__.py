"""Clip filters: decide, before captioning, which clips are not worth a caption (and say why).

Datatrove-style: every filter scores a clip and returns the reasons to drop it (no reasons = keep); the
shard step writes one row per clip with every score, `keep` and the reasons, and counts per reason.
One module per filter, each with its own parameters dataclass; `registry.FILTERS` lists them (one line
each); `run.filter_shard` runs them. Pure code: no Dagster import; models load inside functions.
"""
