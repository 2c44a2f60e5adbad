"""Runs execute their steps in one process unless their run config asks for subprocesses, and the Helm
deployment's PANDA_EXECUTOR=k8s switches to a pod per step (GPU pods for the `gpu` pool)."""

import os
import subprocess
import sys

_PRINT_EXECUTOR = (
    "import warnings; warnings.simplefilter('ignore');"
    "from panda_dagster.definitions import defs;"
    "from panda_dagster.common.kubernetes import k8s_executor_config;"
    "print(defs.executor.name, ','.join(sorted(k8s_executor_config(defs)['per_step_k8s_config'])))"
)


def _executor_of_code_location(panda_executor: str) -> tuple[str, list[str]]:
    out = subprocess.run([sys.executable, "-c", _PRINT_EXECUTOR], env={**os.environ, "PANDA_EXECUTOR": panda_executor},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    name, _, steps = out.stdout.strip().splitlines()[-1].partition(" ")
    return name, steps.split(",")


def test_steps_run_in_process_unless_the_run_config_asks_for_subprocesses():
    from panda_dagster.common.jobs import IN_PROCESS_UNLESS_CONFIGURED

    name, _ = _executor_of_code_location("")
    assert name == IN_PROCESS_UNLESS_CONFIGURED.name == "in_process_unless_configured"
    field = IN_PROCESS_UNLESS_CONFIGURED.config_schema.as_field()
    assert field.default_value == {"in_process": {}}
    assert {"in_process", "multiprocess"} <= set(field.config_type.fields)


def test_helm_executor_gives_every_gpu_pool_step_a_gpu_pod():
    name, gpu_steps = _executor_of_code_location("k8s")
    assert name == "k8s"
    assert {"teacher_captions", "transcripts", "selected_captions"} <= set(gpu_steps)
    assert not {"raw_videos", "clips", "clip_filters", "eval_metrics"} & set(gpu_steps)
