"""A code location for the dead-run tests: one asset in the `gpu` pool that records its process and
then waits until told to finish (the file $PANDA_RELIABILITY_DIR/go), so a test can kill it mid-step."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dagster import Definitions, asset, define_asset_job

from panda_dagster.common.jobs import GPU_POOL


@asset(pool=GPU_POOL)
def gpu_work(context) -> int:
    control = Path(os.environ["PANDA_RELIABILITY_DIR"])
    (control / f"started-{context.run_id}").write_text(str(os.getpid()))
    deadline = time.monotonic() + 600
    while not (control / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return 1


gpu_job = define_asset_job("gpu_job", [gpu_work])

defs = Definitions(assets=[gpu_work], jobs=[gpu_job])
