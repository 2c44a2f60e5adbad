"""deploy/helm/values.yaml against the official Dagster chart's values schema (vendored excerpt), its
instance settings rendered the way the chart renders them and checked by Dagster's own config types,
and the GPU pod config of the `gpu` pool's steps."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HELM = REPO / "deploy" / "helm"
K8S_SCHEMAS = "https://kubernetesjsonschema.dev/"


def _values() -> dict:
    return yaml.safe_load((HELM / "values.yaml").read_text())


def _override_schema(node):
    """The schema as it applies to an override file. Helm validates the chart's own values.yaml merged
    with this file, so keys the chart's defaults supply are not required here; everything else (types,
    enums, unknown keys) is. Kubernetes object schemas (`$ref` to kubernetesjsonschema.dev) cannot be
    fetched offline: those objects keep only the checks written beside the `$ref` (type, value types)."""
    if isinstance(node, dict):
        return {k: _override_schema(v) for k, v in node.items()
                if k != "required" and not (k == "$ref" and str(v).startswith(K8S_SCHEMAS))}
    if isinstance(node, list):
        return [_override_schema(v) for v in node]
    return node


def _errors(values: dict) -> list[str]:
    from jsonschema import Draft7Validator

    schema = _override_schema(json.loads((HELM / "dagster-values.schema.json").read_text()))
    Draft7Validator.check_schema(schema)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in Draft7Validator(schema).iter_errors(values))


def test_values_match_the_chart_schema():
    assert _errors(_values()) == []


@pytest.mark.parametrize("path, bad", [
    (("runLauncher", "type"), "K8sLauncher"),                                        # not a launcher type
    (("runLauncher", "config", "k8sRunLauncher", "loadInClusterConfig"), True),      # misspelt key
    (("computeLogManager", "config", "s3ComputeLogManager", "uploadInterval"), "30s"),
    (("dagster-user-deployments", "deployments", 0, "port"), "3030"),
])
def test_the_schema_check_catches_mistakes(path, bad):
    values = copy.deepcopy(_values())
    node = values
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    assert _errors(values), f"{path} = {bad!r} passed the schema"


def test_launcher_user_code_and_shared_nothing_state():
    values = _values()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["codeServerArgs"]
    assert args[args.index("-m") + 1] == "panda_dagster.definitions"
    assert args[args.index("--location-name") + 1] == "panda_dagster"
    assert deployment["includeConfigInLaunchedRuns"]["enabled"]  # run and step pods get the same env
    env = deployment["env"]
    # The lake, artifacts and step logs live in S3: no ReadWriteMany volume anywhere.
    assert env["PANDA_S3_BUCKET"] and env["PANDA_EXECUTOR"] == "k8s"
    assert values["runLauncher"]["config"]["k8sRunLauncher"]["volumes"] == []
    assert "volumes" not in deployment
    # Every variable the Docker deployment forwards to its run containers is set here too, except the
    # ones the chart itself provides (Postgres) and the ones that only exist in compose (network, endpoint).
    prod = yaml.safe_load((REPO / "docker" / "dagster.yaml").read_text())
    forwarded = set(prod["run_launcher"]["config"]["env_vars"])
    chart_or_compose_only = {n for n in forwarded if n.startswith("DAGSTER_POSTGRES_")} | {
        "DAGSTER_DOCKER_NETWORK", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PANDA_HOME"}
    assert forwarded - chart_or_compose_only <= set(env), forwarded - chart_or_compose_only - set(env)


def test_rendered_instance_settings_are_valid_dagster_config(monkeypatch):
    """The chart turns computeLogManager / postgresql values into the instance's dagster.yaml; render
    them the same way and check them with the config types of dagster-aws and dagster-postgres."""
    from dagster._config import process_config
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
    from dagster_postgres import PostgresRunStorage

    values = _values()
    s3 = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    camel = {"localDir": "local_dir", "uploadInterval": "upload_interval", "endpointUrl": "endpoint_url",
             "useSsl": "use_ssl", "skipEmptyFiles": "skip_empty_files", "showUrlOnly": "show_url_only"}
    rendered = {camel.get(k, k): v for k, v in s3.items()}
    result = process_config(S3ComputeLogManager.config_type(), rendered)
    assert result.success, result.errors
    pg = values["postgresql"]
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "from-the-secret")  # the chart reads it from the secret
    rendered_pg = {"postgres_db": {"hostname": pg["postgresqlHost"], "username": pg["postgresqlUsername"],
                                   "password": {"env": "DAGSTER_PG_PASSWORD"}, "db_name": pg["postgresqlDatabase"],
                                   "port": pg["service"]["port"], "params": pg["postgresqlParams"],
                                   "scheme": pg["postgresqlScheme"]}}
    result = process_config(PostgresRunStorage.config_type(), rendered_pg)
    assert result.success, result.errors
    # The pools the code uses are configured through the chart's additionalInstanceConfig.
    pools = values["additionalInstanceConfig"]["concurrency"]["pools"]
    assert pools == {"default_limit": 1, "granularity": "op"}


def test_gpu_pool_steps_get_a_gpu_node_and_one_gpu(monkeypatch):
    from panda_dagster.common.jobs import GPU_POOL
    from panda_dagster.common.kubernetes import GPU_STEP_TAGS, gpu_pool_ops, k8s_executor_config
    from panda_dagster.definitions import defs

    graph = defs.resolve_asset_graph()
    pools = {}
    for key in graph.get_all_asset_keys():
        assets_def = graph.get(key).assets_def
        if assets_def.is_executable:
            pools[assets_def.node_def.name] = assets_def.node_def.pool
    gpu_ops = gpu_pool_ops(defs)
    assert gpu_ops == sorted(op for op, pool in pools.items() if pool == GPU_POOL)
    assert {"teacher_captions", "selected_captions"} <= set(gpu_ops)
    assert "raw_videos" not in gpu_ops and "clips" not in gpu_ops

    config = k8s_executor_config(defs)
    assert set(config["per_step_k8s_config"]) == set(gpu_ops)
    for step in config["per_step_k8s_config"].values():
        assert step["container_config"]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
        assert step["pod_spec_config"]["node_selector"] == {"nvidia.com/gpu.present": "true"}
        assert step["pod_spec_config"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert GPU_STEP_TAGS["dagster-k8s/config"] == config["per_step_k8s_config"][gpu_ops[0]]
    monkeypatch.setenv("PANDA_K8S_GPU_NODE_LABEL", "cloud.google.com/gke-accelerator=nvidia-l4")
    selector = k8s_executor_config(defs)["per_step_k8s_config"][gpu_ops[0]]["pod_spec_config"]["node_selector"]
    assert selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
