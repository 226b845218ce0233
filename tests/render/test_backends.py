"""`--kv-connector` (NIXL or Mooncake KV transfer) and `--distributed-backend` (multiprocessing
or a Ray cluster): what each choice renders, and what each engine refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.engines import build_services
from orchestrator.engines.common import runs_engine
from orchestrator.errors import PlanError
from orchestrator.plan import Plan, Request
from orchestrator.spec import ServiceSpec

from .conftest import scenario

REPO = Path(__file__).resolve().parent.parent.parent
CLUSTER = REPO / "profiles" / "clusters" / "two-node-h100-ib.yaml"


def _value(spec: ServiceSpec, flag: str) -> str:
    return spec.command[spec.command.index(flag) + 1]


def _by_name(services: list[ServiceSpec]) -> dict[str, ServiceSpec]:
    return {spec.name: spec for spec in services}


def test_vllm_mooncake_pd_sets_the_connector_on_both_sides_and_the_router() -> None:
    services = _by_name(
        build_services(scenario("vllm", "pd2node", request={"kv_connector": "mooncake"}))
    )
    prefill, decode, router = services["prefill-0"], services["decode-0"], services["router"]
    assert json.loads(_value(prefill, "--kv-transfer-config")) == {
        "kv_connector": "MooncakeConnector",
        "kv_role": "kv_producer",
    }
    assert json.loads(_value(decode, "--kv-transfer-config")) == {
        "kv_connector": "MooncakeConnector",
        "kv_role": "kv_consumer",
    }
    assert prefill.environment["VLLM_MOONCAKE_BOOTSTRAP_PORT"] == "8998"
    assert "VLLM_MOONCAKE_BOOTSTRAP_PORT" not in decode.environment
    assert not any(key.startswith("VLLM_NIXL") for key in prefill.environment)
    assert _value(router, "--kv-connector") == "mooncake"
    start = router.command.index("--prefill")
    assert router.command[start + 1 : start + 3] == ["http://192.0.2.10:8100", "8998"]


def test_vllm_default_connector_stays_nixl_without_a_router_flag() -> None:
    services = _by_name(build_services(scenario("vllm", "pd2node")))
    config = json.loads(_value(services["prefill-0"], "--kv-transfer-config"))
    assert config["kv_connector"] == "NixlConnector"
    assert "--kv-connector" not in services["router"].command


@pytest.mark.parametrize(
    ("request_", "backend", "ib_devices"),
    [
        ({}, "mooncake", True),  # RDMA nodes: the automatic choice
        ({"kv_connector": "nixl"}, "nixl", False),
        ({"kv_connector": "mooncake"}, "mooncake", True),
    ],
    ids=["auto", "nixl", "mooncake"],
)
def test_sglang_kv_connector_picks_the_transfer_backend(
    request_: dict[str, str], backend: str, ib_devices: bool
) -> None:
    services = _by_name(build_services(scenario("sglang", "pd2node", request=request_)))
    for name in ("prefill-0", "decode-0"):
        spec = services[name]
        assert _value(spec, "--disaggregation-transfer-backend") == backend
        assert ("--disaggregation-ib-device" in spec.command) is ib_devices


def test_sglang_mooncake_on_nodes_without_rdma_names_no_ib_device() -> None:
    services = build_services(scenario("sglang", "pd1node", request={"kv_connector": "mooncake"}))
    prefill = _by_name(services)["prefill-0"]
    assert _value(prefill, "--disaggregation-transfer-backend") == "mooncake"
    assert "--disaggregation-ib-device" not in prefill.command


def test_vllm_ray_runs_a_cluster_and_one_engine_on_the_head_node() -> None:
    services = build_services(scenario("vllm", "2node-ray"))
    assert [(spec.name, spec.node) for spec in services] == [
        ("serve-0-ray0", "gpu-a"),
        ("serve-0", "gpu-a"),
        ("serve-0-ray1", "gpu-b"),
    ]
    named = _by_name(services)
    head, serve, worker = named["serve-0-ray0"], named["serve-0"], named["serve-0-ray1"]
    assert head.entrypoint == ["ray"] and worker.entrypoint == ["ray"]
    assert head.command == [
        "start",
        "--block",
        "--head",
        "--port=6379",
        "--node-ip-address=192.0.2.10",
    ]
    assert worker.command == [
        "start",
        "--block",
        "--address=192.0.2.10:6379",
        "--node-ip-address=192.0.2.11",
    ]
    assert head.image == serve.image == worker.image == "vllm/vllm-openai:v0.33.0"
    assert head.probe.kind == "process"
    # The worker is healthy while the head's GCS answers: it notices a lost cluster.
    assert (worker.probe.kind, worker.probe.host, worker.probe.port) == ("peer", "192.0.2.10", 6379)
    assert head.restart == worker.restart == serve.restart == "no"
    assert not runs_engine(head) and runs_engine(serve)
    assert serve.entrypoint == ["vllm", "serve"]
    assert _value(serve, "--distributed-executor-backend") == "ray"
    assert _value(serve, "--tensor-parallel-size") == "8"
    assert _value(serve, "--pipeline-parallel-size") == "2"
    for flag in ("--nnodes", "--node-rank", "--master-addr", "--master-port", "--headless"):
        assert flag not in serve.command
    assert serve.probe.kind == "http" and serve.probe.path == "/health"
    assert serve.probe.port == 8000
    assert serve.depends_on == ["serve-0-ray0"]
    assert serve.environment["RAY_ADDRESS"] == "192.0.2.10:6379"
    assert head.environment["VLLM_HOST_IP"] == "192.0.2.10"
    assert worker.environment["VLLM_HOST_IP"] == "192.0.2.11"
    assert serve.environment["VLLM_HOST_IP"] == "192.0.2.10"
    assert worker.gpus == list(range(8))


def test_vllm_ray_on_one_node_keeps_multiprocessing() -> None:
    plan = scenario("vllm", "tp8", request={"distributed_backend": "ray"})
    (serve,) = build_services(plan)
    assert serve.entrypoint == ["vllm", "serve"]
    assert "--distributed-executor-backend" not in serve.command


def test_vllm_ray_refuses_a_rehearsal() -> None:
    with pytest.raises(PlanError, match="simulator image has no Ray"):
        build_services(scenario("vllm", "2node-ray"), simulate=True)


def test_request_leaves_unused_new_options_out_of_the_plan_json() -> None:
    assert Request(context=4096).model_dump() == {
        "goal": "balanced",
        "context": 4096,
        "concurrency": None,
        "quantization": None,
        "kv_cache_dtype": "auto",
        "gpu_memory_utilization": None,
        "disagg": False,
        "pins": {},
        "engine_args": [],
        "public": False,
        "api_key_env": None,
    }
    chosen = Request(context=4096, kv_connector="mooncake", distributed_backend="ray")
    dumped = chosen.model_dump(mode="json")
    assert dumped["kv_connector"] == "mooncake" and dumped["distributed_backend"] == "ray"
    assert Request.model_validate(dumped) == chosen


def test_render_ray_and_mooncake_through_the_planner(tmp_path: Path) -> None:
    args = ["render", "llama-3.1-405b", "--nodes", "2", "--cluster", str(CLUSTER)]
    result = CliRunner().invoke(
        cli,
        [*args, "--tp", "8", "--pp", "2", "--distributed-backend", "ray", "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    plan = Plan.model_validate_json((tmp_path / "plan.json").read_text())
    assert plan.request.distributed_backend == "ray"
    compose = (tmp_path / "h100-a" / "compose.yaml").read_text()
    assert '"--distributed-executor-backend"' in compose and '"--head"' in compose


def test_render_mooncake_disagg_through_the_planner(tmp_path: Path) -> None:
    args = ["render", "llama-3.1-8b", "--nodes", "2", "--cluster", str(CLUSTER), "--disagg"]
    result = CliRunner().invoke(cli, [*args, "--kv-connector", "mooncake", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    plan = Plan.model_validate_json((tmp_path / "plan.json").read_text())
    assert plan.request.kv_connector == "mooncake"
    composes = "".join(path.read_text() for path in tmp_path.glob("*/compose.yaml"))
    assert "MooncakeConnector" in composes and "VLLM_MOONCAKE_BOOTSTRAP_PORT=8998" in composes


def test_sglang_with_ray_is_a_one_line_input_error(tmp_path: Path) -> None:
    args = ["render", "llama-3.1-8b", "--gpus", "1xH100", "--engine", "sglang"]
    result = CliRunner().invoke(
        cli, [*args, "--distributed-backend", "ray", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.output.startswith("error: --distributed-backend ray is a vLLM option")
    assert len(result.output.strip().splitlines()) == 1


def test_simulated_ray_is_a_one_line_input_error(tmp_path: Path) -> None:
    args = ["render", "llama-3.1-405b", "--nodes", "2", "--cluster", str(CLUSTER), "--tp", "8"]
    options = ["--pp", "2", "--distributed-backend", "ray", "--simulate", "--out", str(tmp_path)]
    result = CliRunner().invoke(cli, [*args, *options])
    assert result.exit_code == 2
    assert result.output.startswith("error: the simulator image has no Ray")
    assert len(result.output.strip().splitlines()) == 1


def test_ray_on_an_instance_inside_one_node_is_a_warning_not_a_silent_fallback() -> None:
    from orchestrator.planning.build import build_plan
    from orchestrator.planning.request import PlanRequest

    plan = build_plan(PlanRequest(model="qwen3-8b", gpus="1xH100", distributed_backend="ray"))
    assert any(
        "--distributed-backend ray applies to instances that span nodes" in w for w in plan.warnings
    )
