"""Kubernetes manifests: valid against the Kubernetes and LeaderWorkerSet schemas, and
consistent with the plan (ranks, rendezvous, probes, GPUs, secrets)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.errors import InputError
from orchestrator.spec import LABEL_SERVICE

from .conftest import K8S_SCENARIOS, KUBERNETES_VERSION, Schemas, render, scenario

_REF = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_LWS_ENV = {"LWS_LEADER_ADDRESS", "LWS_WORKER_INDEX", "LWS_GROUP_SIZE"}


def _documents(paths: list[Path]) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in paths:
        if path.suffix == ".yaml":
            documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def _pods(document: dict[str, Any]) -> list[dict[str, Any]]:
    if document["kind"] == "Deployment":
        return [document["spec"]["template"]]
    if document["kind"] == "LeaderWorkerSet":
        templates = document["spec"]["leaderWorkerTemplate"]
        return [templates["leaderTemplate"], templates["workerTemplate"]]
    return []


IDS = [f"{engine}-{layout}" for engine, layout in K8S_SCENARIOS]


@pytest.mark.parametrize(("engine", "layout"), K8S_SCENARIOS, ids=IDS)
def test_every_manifest_matches_the_schemas(
    engine: str, layout: str, tmp_path: Path, k8s_schemas: Schemas
) -> None:
    documents = _documents(render("k8s", engine, layout, tmp_path))
    assert documents
    for document in documents:
        errors = k8s_schemas.errors(document)
        assert not errors, (
            f"{document['kind']} {document['metadata']['name']} is not valid for Kubernetes "
            f"{KUBERNETES_VERSION}: {errors[:5]}"
        )


def test_the_strict_schemas_refuse_an_unknown_field(tmp_path: Path, k8s_schemas: Schemas) -> None:
    documents = _documents(render("k8s", "vllm", "2node", tmp_path))
    lws = next(doc for doc in documents if doc["kind"] == "LeaderWorkerSet")
    lws["spec"]["leaderWorkerTemplate"]["restartPolicy"] = "Always"
    lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["gpus"] = 8
    errors = k8s_schemas.errors(lws)
    assert any("'Always' is not one of" in error for error in errors)
    assert any("'gpus' was unexpected" in error for error in errors)


@pytest.mark.parametrize(("engine", "layout"), K8S_SCENARIOS, ids=IDS)
def test_manifests_are_consistent_with_the_plan(engine: str, layout: str, tmp_path: Path) -> None:
    plan = scenario(engine, layout)
    documents = _documents(render("k8s", engine, layout, tmp_path))
    services = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "Service"}
    workloads = [doc for doc in documents if doc["kind"] in ("Deployment", "LeaderWorkerSet")]
    # One workload per engine instance and front.
    instances = sum(len(role.replicas) for role in plan.roles if role.name != "router")
    fronts = (
        1
        if any(d["metadata"]["labels"]["ai.deploy.role"] in ("router", "lb") for d in workloads)
        else 0
    )
    assert len(workloads) == instances + fronts
    for workload in workloads:
        labels = workload["metadata"]["labels"]
        assert workload["metadata"]["namespace"] == "default"
        for pod in _pods(workload):
            assert pod["metadata"]["labels"][LABEL_SERVICE] == labels[LABEL_SERVICE]
            container = pod["spec"]["containers"][0]
            defined = {item["name"] for item in container.get("env", [])}
            words = [*container.get("command", []), *container["args"]]
            words += [item.get("value", "") for item in container.get("env", [])]
            for word in words:
                for name in _REF.findall(word):
                    assert name in defined | _LWS_ENV, f"$({name}) is not defined in {word!r}"
            for item in container.get("env", []):
                # Secrets are referenced from a Secret, never inlined.
                if item["name"] in ("HF_TOKEN", plan.request.api_key_env):
                    assert set(item) == {"name", "valueFrom"}
            gpus = container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
            assert gpus in (
                None,
                *{len(s.gpus) for r in plan.roles for p in r.replicas for s in p.slices},
            )
            shm = next(v for v in pod["spec"]["volumes"] if v["name"] == "dshm")
            assert shm["emptyDir"]["medium"] == "Memory"
            if "startupProbe" in container:
                startup = container["startupProbe"]
                readiness = container["readinessProbe"]
                assert startup["httpGet"] == readiness["httpGet"]
        if workload["kind"] == "LeaderWorkerSet":
            spec = workload["spec"]
            # The leader's readiness (HTTP) needs its workers: they must not wait for it.
            assert spec["startupPolicy"] == "LeaderCreated"
            assert spec["leaderWorkerTemplate"]["restartPolicy"] == "RecreateGroupOnPodRestart"
            size = spec["leaderWorkerTemplate"]["size"]
            replica = next(p for r in plan.roles for p in r.replicas if len(p.slices) == size)
            assert size == len(replica.slices)
            worker = spec["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]
            args = worker["args"]
            rank_flag = "--node-rank"
            assert args[args.index(rank_flag) + 1] == "$(LWS_WORKER_INDEX)"
            leader = spec["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
            joined = " ".join(leader["args"] + args)
            assert "$(LWS_LEADER_ADDRESS)" in joined
            # No cluster-file address survives: the scheduler picks the nodes.
            for node in plan.hardware.node_list:
                assert node.address not in joined
        selector = workload["spec"].get("selector", {}).get("matchLabels")
        if selector is not None:
            pod_labels = workload["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= pod_labels.items()
    for name in services:
        assert len(name) <= 63 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name)


def test_the_startup_probe_covers_the_load_budget(tmp_path: Path) -> None:
    from orchestrator.engines import build_services

    plan = scenario("vllm", "2node")
    budget = max(spec.probe.start_period_s for spec in build_services(plan))
    documents = _documents(render("k8s", "vllm", "2node", tmp_path))
    lws = next(doc for doc in documents if doc["kind"] == "LeaderWorkerSet")
    leader = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    startup = leader["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= budget
    assert budget == 4800  # load at the documented rate, plus a first download of the checkpoint


def test_router_upstreams_become_service_names(tmp_path: Path) -> None:
    documents = _documents(render("k8s", "sglang", "pd2node", tmp_path))
    router = next(
        d
        for d in documents
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-router")
    )
    args = router["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[: args.index("--host")] == [
        "--pd-disaggregation",
        "--prefill",
        "http://llama-3-1-70b-prefill-0:30100",
        "8998",
        "--decode",
        "http://llama-3-1-70b-decode-0:30200",
    ]
    services = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Service"}
    prefill_ports = [p["port"] for p in services["llama-3-1-70b-prefill-0"]["spec"]["ports"]]
    assert 30100 in prefill_ports and 8998 in prefill_ports


def test_settings_from_the_cluster_file_shape_the_pods(tmp_path: Path) -> None:
    documents = _documents(
        render(
            "k8s",
            "vllm",
            "2node",
            tmp_path,
            kubernetes={
                "namespace": "inference",
                "host_network": True,
                "hf_cache": {"host_path": "/data/hf"},
                "rdma_resource": "nvidia.com/hostdev",
                "secret": "llm-keys",
            },
        )
    )
    assert documents[0] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "inference", "labels": {"app.kubernetes.io/managed-by": "deploy"}},
    }
    lws = next(doc for doc in documents if doc["kind"] == "LeaderWorkerSet")
    pod = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    cache = next(v for v in pod["volumes"] if v["name"] == "hf-cache")
    assert cache["hostPath"] == {"path": "/data/hf", "type": "DirectoryOrCreate"}
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 8, "nvidia.com/hostdev": 1}
    token = next(item for item in container["env"] if item["name"] == "HF_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["name"] == "llm-keys"


def test_an_api_key_is_a_secret_reference(tmp_path: Path) -> None:
    paths = render("k8s", "vllm", "1gpu-public-key", tmp_path)
    text = "".join(path.read_text() for path in paths if path.suffix == ".yaml")
    documents = _documents(paths)
    deployment = next(doc for doc in documents if doc["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    names = [item["name"] for item in container["env"]]
    # vLLM reads its key from VLLM_API_KEY, which Kubernetes expands from the Secret's value
    # (a variable can only refer to one defined before it).
    vllm_key = container["env"][names.index("VLLM_API_KEY")]
    assert vllm_key == {"name": "VLLM_API_KEY", "value": "$(SERVE_KEY)"}
    assert names.index("SERVE_KEY") < names.index("VLLM_API_KEY")
    key = container["env"][names.index("SERVE_KEY")]
    assert key == {
        "name": "SERVE_KEY",
        "valueFrom": {"secretKeyRef": {"name": "llama-3-1-8b-secrets", "key": "SERVE_KEY"}},
    }
    assert "${SERVE_KEY}" not in text


def test_ray_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--distributed-backend mp"):
        render("k8s", "vllm", "2node-ray", tmp_path)


def test_wide_dp_across_nodes_computes_each_workers_first_rank(
    tmp_path: Path, k8s_schemas: Schemas
) -> None:
    """vLLM's DP across nodes gives node r `--data-parallel-start-rank r × local`: LWS has one
    worker template, so the shell computes it from the worker index."""
    from orchestrator.engines import build_services
    from orchestrator.plan import Parallelism
    from orchestrator.targets.render import render_target
    from orchestrator.targets.settings import TargetSettings
    from tests.render.conftest import ALL8, make_plan, replica, role

    par = Parallelism(tp=1, dp=24, ep=24, attn_dp=24)
    plan = make_plan(
        engine="vllm",
        model="deepseek-r1",
        node_count=3,
        gpus_per_node=8,
        roles=[role("serve", "deepseek-r1", par, [replica(0, (0, ALL8), (1, ALL8), (2, ALL8))])],
    )
    services = build_services(plan)
    starts = [s.command[s.command.index("--data-parallel-start-rank") + 1] for s in services[1:]]
    assert starts == ["8", "16"]
    documents = _documents(render_target("k8s", plan, services, tmp_path, TargetSettings()))
    lws = next(doc for doc in documents if doc["kind"] == "LeaderWorkerSet")
    assert not k8s_schemas.errors(lws)
    templates = lws["spec"]["leaderWorkerTemplate"]
    assert templates["size"] == 3
    worker = templates["workerTemplate"]["spec"]["containers"][0]
    assert worker["command"] == [
        "/bin/sh",
        "-c",
        'exec "$$@" --data-parallel-start-rank "$$((LWS_WORKER_INDEX * 8))"',
        "sh",
        "vllm",
        "serve",
    ]
    args = worker["args"]
    assert "--data-parallel-start-rank" not in args
    assert args[args.index("--data-parallel-address") + 1] == "$(LWS_LEADER_ADDRESS)"
    # What the shell runs for worker 2, once Kubernetes has expanded `$$` to `$`.
    script = worker["command"][2].replace("$$", "$")
    result = subprocess.run(
        ["sh", "-c", script.replace("exec ", "echo "), "sh", "vllm", "serve"],
        env={"LWS_WORKER_INDEX": "2", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "vllm serve --data-parallel-start-rank 16\n"
