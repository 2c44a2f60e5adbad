"""A stage's run config turned into its library dataclass, the one way every asset does it."""

from __future__ import annotations

from dagster import Config, Failure


def lib_config_or_fail(config: Config, stage: str):
    """`config.to_lib()` (see common/config.py), or a Failure naming `stage` when the library rejects a value:
    without retries, since the same config fails again."""
    try:
        return config.to_lib()
    except ValueError as exc:
        raise Failure(f"{stage} config: {exc}", allow_retries=False) from exc
