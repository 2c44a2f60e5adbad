"""Kubernetes wiring (deploy/helm/values.yaml, docs/operations.md "Scale-out on Kubernetes"): which steps
hold a GPU and what their pods ask for.

With the chart's K8sRunLauncher every run is a Kubernetes Job; with `k8s_job_executor` every step of
the run is a pod of its own. Steps in the `gpu` pool (model stages) get a GPU node and one
`nvidia.com/gpu`; every other step stays on CPU nodes. The same pod config is offered two ways:
`GPU_STEP_TAGS` (the `dagster-k8s/config` op tag, for assets that set it) and
`k8s_executor_config(defs)` (the executor's `per_step_k8s_config`, derived from the asset graph, so a
new model stage in the `gpu` pool gets its GPU without touching this file).
"""

from __future__ import annotations

import os

from panda_dagster.common.jobs import GPU_POOL

# The label GPU nodes carry (NVIDIA's GPU operator / GKE and EKS GPU node pools set an equivalent);
# override with PANDA_K8S_GPU_NODE_LABEL=key=value.
DEFAULT_GPU_NODE_LABEL = "nvidia.com/gpu.present=true"


def gpu_node_selector() -> dict[str, str]:
    key, _, value = os.environ.get("PANDA_K8S_GPU_NODE_LABEL", DEFAULT_GPU_NODE_LABEL).partition("=")
    return {key: value}


def gpu_step_k8s_config(gpus: int = 1) -> dict:
    """Pod config of one step that holds `gpus` GPUs (dagster-k8s `dagster-k8s/config` shape)."""
    return {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": str(gpus)},
                                           "requests": {"cpu": "2", "memory": "8Gi"}}},
        "pod_spec_config": {
            "node_selector": gpu_node_selector(),
            # GPU node pools are usually tainted so that only GPU work lands there.
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }


GPU_STEP_TAGS = {"dagster-k8s/config": gpu_step_k8s_config()}


def gpu_pool_ops(defs) -> list[str]:
    """Names of the ops (steps) whose asset runs in the `gpu` pool (read from the asset definitions, so it
    works on the stages' definitions before resources are bound)."""
    return sorted({assets_def.node_def.name for assets_def in defs.assets or ()
                   if getattr(assets_def, "is_executable", False)
                   and getattr(assets_def.node_def, "pool", None) == GPU_POOL})


def k8s_executor_config(defs, max_concurrent: int = 8) -> dict:
    """Config for dagster-k8s' `k8s_job_executor`: a GPU pod for every `gpu` pool step."""
    return {"max_concurrent": max_concurrent,
            "per_step_k8s_config": {op: gpu_step_k8s_config() for op in gpu_pool_ops(defs)}}


def run_executor(stage_defs, default):
    """The executor of every run: `k8s_job_executor` (a pod per step, GPU pods for the `gpu` pool) when
    PANDA_EXECUTOR=k8s (the Helm deployment sets it), else `default`."""
    if os.environ.get("PANDA_EXECUTOR", "") != "k8s":
        return default
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(k8s_executor_config(stage_defs))
