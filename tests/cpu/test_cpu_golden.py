"""Plans and compose files for CPU nodes, pinned by golden files under tests/golden/cpu/.

Each case plans through the real planner from a cluster file whose CPU facts are stated (no
detection), renders every node, and compares plan.json, compose.yaml, launch.sh and the
README with the committed files. Regenerate with `pytest tests/cpu --update-golden`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.engines import build_services
from orchestrator.plan import Plan
from orchestrator.planning.build import build_plan
from orchestrator.planning.request import PlanRequest
from orchestrator.targets.compose.render import render_deployment

from .conftest import cpu_cluster

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "cpu"
MODEL = "llama-3.1-8b"

# name: (nodes, cores, NUMA nodes, memory GiB, pins)
CASES: dict[str, tuple[int, int, int, int, dict[str, int]]] = {
    "tp1": (1, 8, 1, 64, {}),
    "tp2": (1, 8, 1, 64, {"tp": 2}),
    "pp2": (1, 8, 1, 64, {"pp": 2}),
    "dp2": (1, 8, 1, 64, {"dp": 2}),
    "numa2-default": (1, 16, 2, 96, {}),
    "2node-tp2": (2, 8, 1, 64, {"tp": 2}),
    "2node-pp2": (2, 8, 1, 64, {"pp": 2}),
    "2node-dp2": (2, 8, 1, 64, {"dp": 2}),
    "2node-replicas": (2, 16, 2, 96, {}),
    # Prefill/decode ("disagg" is not a pin: it turns on --disagg).
    "pd1node": (1, 8, 1, 64, {"disagg": 1}),
    "pd2node-tp2": (2, 8, 1, 64, {"disagg": 1, "tp": 2}),
}


def plan_case(name: str, tmp_path: Path) -> Plan:
    nodes, cores, numa, memory, pins = CASES[name]
    pins = dict(pins)
    disagg = bool(pins.pop("disagg", 0))
    cluster = cpu_cluster(tmp_path, nodes=nodes, cores=cores, numa=numa, memory=memory)
    # The cluster file's path is recorded nowhere in the plan; its name is.
    return build_plan(
        PlanRequest(
            model=MODEL,
            cluster=cluster,
            context=8192,
            concurrency=4,
            name=name,
            disagg=disagg,
            **pins,
        )
    )


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_cpu_plan_renders_as_golden(name: str, tmp_path: Path, update_golden: bool) -> None:
    plan = plan_case(name, tmp_path)
    out = tmp_path / "out"
    render_deployment(plan, build_services(plan), out)
    golden = GOLDEN / name
    if update_golden:
        shutil.rmtree(golden, ignore_errors=True)
        shutil.copytree(out, golden)
    rendered, expected = _tree(out), _tree(golden)
    assert sorted(rendered) == sorted(expected)
    for file, content in rendered.items():
        assert content == expected[file], f"{golden.name}/{file} differs from the golden file"


def _services(name: str, tmp_path: Path) -> tuple[Plan, list]:  # type: ignore[type-arg]
    plan = plan_case(name, tmp_path)
    return plan, build_services(plan)


def test_single_node_layouts_bind_each_rank_to_its_own_cores(tmp_path: Path) -> None:
    expected = {"tp1": "0-7", "tp2": "0-3|4-7", "pp2": "0-3|4-7", "dp2": "0-3|4-7"}
    for name, bind in expected.items():
        plan, services = _services(name, tmp_path / name)
        (serve,) = services
        assert serve.environment["VLLM_CPU_OMP_THREADS_BIND"] == bind
        assert serve.environment["VLLM_CPU_KVCACHE_SPACE"] == str(plan.cpu.kvcache_space_gib)  # type: ignore[union-attr]
        assert serve.gpus is None and serve.ipc_mode == "private"
        ranks = len(bind.split("|"))
        assert serve.shm_size == f"{ranks}g"
        assert serve.image == "deploy-vllm-cpu:0.32.0"
        assert "--gpu-memory-utilization" not in serve.command
        assert "--enforce-eager" not in serve.command


def test_two_numa_nodes_get_one_rank_each(tmp_path: Path) -> None:
    plan, (serve,) = _services("numa2-default", tmp_path)
    assert plan.parallelism.tp == 2
    assert serve.environment["VLLM_CPU_OMP_THREADS_BIND"] == "0-7|8-15"


def test_two_nodes_split_the_instance(tmp_path: Path) -> None:
    for name, per_node in (("2node-tp2", "0-7"), ("2node-pp2", "0-7"), ("2node-dp2", "0-7")):
        _, services = _services(name, tmp_path / name)
        engines = [spec for spec in services if spec.role == "serve"]
        assert [spec.node for spec in engines] == ["cpu1", "cpu2"], name
        for spec in engines:
            assert spec.environment["VLLM_CPU_OMP_THREADS_BIND"] == per_node
            assert spec.network_mode == "host" and spec.gpus is None
        follower = engines[1].command
        if name == "2node-dp2":
            assert "--data-parallel-size-local" in follower and "--headless" in follower
        else:
            assert follower[follower.index("--nnodes") + 1] == "2"
            assert "--headless" in follower


def test_two_dual_socket_nodes_hold_replicas(tmp_path: Path) -> None:
    plan, services = _services("2node-replicas", tmp_path)
    serve = plan.role("serve")
    assert serve is not None and len(serve.replicas) == 2
    assert plan.parallelism.tp == 2
    assert {spec.role for spec in services} == {"serve", "lb"}


def test_plan_json_carries_the_cpu_part_and_gpu_plans_do_not(tmp_path: Path) -> None:
    plan = plan_case("tp2", tmp_path)
    data = json.loads(plan.model_dump_json())
    assert data["cpu"]["kvcache_space_gib"] >= 1
    assert data["cpu"]["bindings"][0]["omp_threads_bind"] == "0-3|4-7"
    gpu = build_plan(PlanRequest(model=MODEL, gpus="1xH100"))
    assert "cpu" not in json.loads(gpu.model_dump_json())


def test_prefill_and_decode_never_share_a_core(tmp_path: Path) -> None:
    _, services = _services("pd1node", tmp_path / "one")
    engines = {spec.role: spec for spec in services if spec.role in ("prefill", "decode")}
    assert engines["prefill"].environment["VLLM_CPU_OMP_THREADS_BIND"] == "0-3"
    assert engines["decode"].environment["VLLM_CPU_OMP_THREADS_BIND"] == "4-7"
    assert all("NixlConnector" in " ".join(spec.command) for spec in engines.values())
    assert {spec.role for spec in services} == {"prefill", "decode", "router"}
    _, services = _services("pd2node-tp2", tmp_path / "two")
    engines = {spec.role: spec for spec in services if spec.role in ("prefill", "decode")}
    assert (engines["prefill"].node, engines["decode"].node) == ("cpu1", "cpu2")
    assert engines["decode"].environment["VLLM_CPU_OMP_THREADS_BIND"] == "0-3|4-7"
