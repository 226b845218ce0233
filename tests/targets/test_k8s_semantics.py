"""What the Kubernetes controllers do with the manifests, checked without a cluster: names
(DNS-1123, lengths), paths, references between objects (Service selectors match pod labels,
every mounted volume exists, ConfigMaps exist), a client Service apart from the name the LWS
controller takes for its headless Service (through which LWS_LEADER_ADDRESS resolves), node
interfaces only where the pod has them, and DeepEP pods as privileged as the compose files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.engines import build_services
from orchestrator.spec import ServiceSpec

from .conftest import K8S_SCENARIOS, render, scenario

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def _documents(out: Path) -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted((out / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def _pods(document: dict[str, Any]) -> list[dict[str, Any]]:
    if document["kind"] == "Deployment":
        return [document["spec"]["template"]]
    if document["kind"] == "LeaderWorkerSet":
        templates = document["spec"]["leaderWorkerTemplate"]
        return [templates["leaderTemplate"], templates["workerTemplate"]]
    return []


def check(documents: list[dict[str, Any]], services: list[ServiceSpec], host_network: bool) -> None:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in documents:
        by_kind.setdefault(doc["kind"], []).append(doc)
        assert _DNS_LABEL.match(doc["metadata"]["name"]), doc["metadata"]["name"]
    lws_names = {doc["metadata"]["name"] for doc in by_kind.get("LeaderWorkerSet", [])}
    for doc in by_kind.get("LeaderWorkerSet", []):
        # LWS appends -<replica>-<worker> to pod names (63 characters at most).
        assert len(doc["metadata"]["name"]) <= 52
    configmaps = {doc["metadata"]["name"] for doc in by_kind.get("ConfigMap", [])}
    pods = [pod for doc in documents for pod in _pods(doc)]
    for service in by_kind.get("Service", []):
        name = service["metadata"]["name"]
        assert name not in lws_names, f"Service {name} takes the LeaderWorkerSet's own name"
        selector = service["spec"]["selector"]
        core = {k: v for k, v in selector.items() if not k.startswith("leaderworkerset")}
        assert any(core.items() <= pod["metadata"]["labels"].items() for pod in pods), (
            f"Service {name} selects no pod"
        )
    privileged = {spec.image for spec in services if spec.privileged}
    for pod in pods:
        spec = pod["spec"]
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for container in spec["containers"]:
            for mount in container["volumeMounts"]:
                assert mount["name"] in volumes, f"volume {mount['name']} is not defined"
            env = {item["name"]: item for item in container.get("env", [])}
            if not host_network:
                assert "NCCL_SOCKET_IFNAME" not in env and "GLOO_SOCKET_IFNAME" not in env
            for item in env.values():
                for ref in re.findall(
                    r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", item.get("value", "")
                ):
                    assert ref in env or ref.startswith("LWS_"), f"$({ref}) resolves to nothing"
            if (
                privileged
                and container["image"] in privileged
                and any(spec.privileged and spec.role == container["name"] for spec in services)
            ):
                assert container.get("securityContext", {}).get("privileged") is True
        for volume in volumes.values():
            if "hostPath" in volume:
                path = volume["hostPath"]["path"]
                assert path.startswith("/") and "~" not in path, path
                assert volume["hostPath"].get("type") in ("DirectoryOrCreate", "Directory")
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps


@pytest.mark.parametrize(
    ("engine", "layout"), K8S_SCENARIOS, ids=["-".join(case) for case in K8S_SCENARIOS]
)
@pytest.mark.parametrize("host_network", [False, True])
def test_the_controllers_accept_every_scenario(
    engine: str, layout: str, host_network: bool, tmp_path: Path
) -> None:
    render("k8s", engine, layout, tmp_path, kubernetes={"host_network": host_network})
    documents = _documents(tmp_path)
    check(documents, build_services(scenario(engine, layout)), host_network)
    text = "".join(path.read_text() for path in (tmp_path / "k8s").glob("*.yaml"))
    assert "~/" not in text


def test_jit_caches_are_pod_scratch_not_host_paths(tmp_path: Path) -> None:
    render("k8s", "vllm", "2node", tmp_path)
    [lws] = [doc for doc in _documents(tmp_path) if doc["kind"] == "LeaderWorkerSet"]
    pod = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/root/.cache/vllm"]] == {
        "name": mounts["/root/.cache/vllm"],
        "emptyDir": {},
    }


def test_the_client_service_is_named_apart_from_the_leaderworkerset(tmp_path: Path) -> None:
    render("k8s", "sglang", "2node", tmp_path)
    documents = _documents(tmp_path)
    [lws] = [doc for doc in documents if doc["kind"] == "LeaderWorkerSet"]
    [service] = [doc for doc in documents if doc["kind"] == "Service"]
    assert service["metadata"]["name"] == lws["metadata"]["name"] + "-api"
    assert service["spec"]["selector"]["leaderworkerset.sigs.k8s.io/worker-index"] == "0"


def test_deepep_pods_are_privileged_as_in_compose(tmp_path: Path) -> None:
    from orchestrator.targets.instances import instances
    from orchestrator.targets.k8s import _Manifests
    from orchestrator.targets.settings import KubernetesSettings

    plan = scenario("vllm", "2node")
    services = [spec.model_copy(update={"privileged": True}) for spec in build_services(plan)]
    builder = _Manifests(plan, services, KubernetesSettings(), "x")
    [group] = instances(services)
    container = builder.container(group.head, group, worker=False)
    assert container["securityContext"] == {"privileged": True}


def test_pods_request_cpu_memory_and_the_planned_gpu(tmp_path: Path) -> None:
    render("k8s", "vllm", "replicas", tmp_path)
    documents = _documents(tmp_path)
    for doc in documents:
        for pod in _pods(doc):
            [container] = pod["spec"]["containers"]
            requests = container["resources"]["requests"]
            assert set(requests) == {"cpu", "memory"}
            if "limits" in container["resources"]:  # an engine on GPUs
                assert int(requests["cpu"]) >= container["resources"]["limits"]["nvidia.com/gpu"]
                [term] = pod["spec"]["affinity"]["nodeAffinity"][
                    "requiredDuringSchedulingIgnoredDuringExecution"
                ]["nodeSelectorTerms"]
                assert term["matchExpressions"] == [
                    {
                        "key": "nvidia.com/gpu.product",
                        "operator": "In",
                        "values": ["NVIDIA-H100-80GB-HBM3"],
                    }
                ]
            else:
                assert "affinity" not in pod["spec"]


def test_a_read_write_once_cache_claim_shared_across_nodes_is_refused(tmp_path: Path) -> None:
    from orchestrator.errors import InputError

    cache = {"hf_cache": {"pvc": "weights", "access_mode": "ReadWriteOnce"}}
    with pytest.raises(InputError, match="ReadWriteOnce, but pods on 2 nodes mount it"):
        render("k8s", "vllm", "2node", tmp_path / "a", kubernetes=cache)
    render("k8s", "vllm", "tp8", tmp_path / "b", kubernetes=cache)  # one node: allowed
    render("k8s", "vllm", "2node", tmp_path / "c")  # ReadWriteMany by default


def test_vllm_hybrid_lb_pools_are_leaderworkersets_every_pod_serving(
    cli_runner: Any, tmp_path: Path
) -> None:
    """vLLM wide-EP prefill/decode the way llm-d's wide-EP guide runs it: one LWS per pool,
    every pod an API server (--data-parallel-hybrid-lb) whose start rank follows its worker
    index, the pool's Service over all of its pods, and the router given each pool once."""
    from orchestrator.cli import cli

    cluster = Path(__file__).resolve().parents[2] / "profiles/clusters/twelve-node-h100-ib.yaml"
    args = ["render", "deepseek-r1", "--disagg", "--engine", "vllm", "--cluster", str(cluster)]
    result = cli_runner.invoke(cli, [*args, "--target", "k8s", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    documents = _documents(tmp_path)
    pools = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "LeaderWorkerSet"}
    assert set(pools) == {"deepseek-r1-prefill-0", "deepseek-r1-decode-0"}
    for name, lws in pools.items():
        templates = lws["spec"]["leaderWorkerTemplate"]
        assert templates["size"] > 1
        worker = templates["workerTemplate"]["spec"]["containers"][0]
        assert "--data-parallel-hybrid-lb" in worker["args"]
        assert worker["command"][:2] == ["/bin/sh", "-c"]
        assert "--data-parallel-start-rank" in worker["command"][2]
        assert "LWS_WORKER_INDEX" in worker["command"][2]
        [service] = [
            doc
            for doc in documents
            if doc["kind"] == "Service" and doc["metadata"]["name"] == name + "-api"
        ]
        assert "leaderworkerset.sigs.k8s.io/worker-index" not in service["spec"]["selector"]
    [router] = [doc for doc in documents if doc["kind"] == "Deployment"]
    router_args = router["spec"]["template"]["spec"]["containers"][0]["args"]
    assert router_args[:5] == [
        "--vllm-pd-disaggregation",
        "--prefill",
        "http://deepseek-r1-prefill-0-api:8100",
        "--decode",
        "http://deepseek-r1-decode-0-api:8200",
    ]
    plan_services = build_services(_plan_of(tmp_path))
    check(documents, plan_services, host_network=False)


def _plan_of(out: Path) -> Any:
    from orchestrator.plan import Plan

    return Plan.model_validate_json((out / "plan.json").read_text())


def test_multi_node_replicas_are_one_leaderworkerset_with_replicas(
    cli_runner: Any, tmp_path: Path
) -> None:
    from orchestrator.cli import cli

    cluster = Path(__file__).resolve().parents[2] / "profiles/clusters/twelve-node-h100-ib.yaml"
    args = ["render", "deepseek-r1", "--engine", "vllm", "--cluster", str(cluster)]
    result = cli_runner.invoke(cli, [*args, "--target", "k8s", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    documents = _documents(tmp_path)
    [lws] = [doc for doc in documents if doc["kind"] == "LeaderWorkerSet"]
    assert lws["spec"]["replicas"] == 6 and lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    [config] = [doc for doc in documents if doc["kind"] == "ConfigMap"]
    servers = re.findall(r"server (\S+) ", config["data"]["nginx.conf"])
    assert servers == [f"{lws['metadata']['name']}-api:8001"]
    check(documents, build_services(_plan_of(tmp_path)), host_network=False)


@pytest.mark.parametrize(
    ("engine", "layout"), K8S_SCENARIOS, ids=["-".join(case) for case in K8S_SCENARIOS]
)
def test_what_the_manifests_reference_and_do_not_create_is_documented(
    engine: str, layout: str, tmp_path: Path
) -> None:
    render("k8s", engine, layout, tmp_path)
    for path in sorted((tmp_path / "k8s").glob("*.yaml")):
        text = path.read_text()
        header = "\n".join(line for line in text.splitlines() if line.startswith("# Requires: "))
        documents = [doc for doc in yaml.safe_load_all(text) if doc]
        created = {(doc["kind"], doc["metadata"]["name"]) for doc in documents}
        for ref in re.findall(r"secretKeyRef:\n\s+name: \"([^\"]+)\"\n\s+key: \"([^\"]+)\"", text):
            assert ("Secret", ref[0]) not in created
            assert f"Secret {ref[0]} with keys" in header and ref[1] in header
        for claim in re.findall(r"claimName: \"([^\"]+)\"", text):
            assert f"PersistentVolumeClaim {claim}" in header
        if any(doc["kind"] == "LeaderWorkerSet" for doc in documents):
            assert "the LeaderWorkerSet controller" in header
