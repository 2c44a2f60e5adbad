"""What the dataset report shows: the one home of its settings and their defaults (the `dataset_report`
asset's config and `panda report`'s options both come from here). Light on purpose: the CLI imports it to
build its parser."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReportConfig:
    """What the dataset report shows."""

    samples_per_shard: int = field(default=4, metadata={"help": "Sample clips shown per shard"})
    dropped_examples_per_reason: int = field(default=3, metadata={
        "help": "Clips shown per reason the clip filters dropped clips for"})


REPORT_DEFAULTS = ReportConfig()
