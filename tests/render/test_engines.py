"""What the engine renderers put in each ServiceSpec, layout by layout."""

from __future__ import annotations

import json

import pytest

from orchestrator.engines import build_services
from orchestrator.engines.common import (
    HF_CACHE_SOURCE,
    LOAD_RATE_GIB_PER_S,
    SIM_IMAGE,
    expand_host_path,
    healthcheck_test,
    start_period_s,
)
from orchestrator.errors import FlagError, PlanError
from orchestrator.spec import (
    LABEL_DEPLOYMENT,
    LABEL_PLAN_HASH,
    LABEL_SPEC_HASH,
    ServiceSpec,
    resolve_refs,
)

from .conftest import Parallelism, make_plan, replica, role, scenario


def _value(spec: ServiceSpec, flag: str) -> str:
    return spec.command[spec.command.index(flag) + 1]


def _by_name(services: list[ServiceSpec]) -> dict[str, ServiceSpec]:
    return {spec.name: spec for spec in services}


def test_single_gpu_vllm_service() -> None:
    plan = scenario("vllm", "1gpu")
    (spec,) = build_services(plan)
    assert spec.name == "serve-0"
    assert spec.entrypoint == ["vllm", "serve"]
    assert spec.command[0] == "meta-llama/Llama-3.1-8B-Instruct"
    assert _value(spec, "--served-model-name") == "llama-3.1-8b"
    assert _value(spec, "--host") == "0.0.0.0"
    assert _value(spec, "--port") == "8000"
    assert _value(spec, "--tensor-parallel-size") == "1"
    assert spec.gpus == [0]
    assert spec.network_mode == "bridge"
    assert [(p.host_ip, p.host, p.container) for p in spec.ports] == [("127.0.0.1", 8000, 8000)]
    assert spec.probe.kind == "http" and spec.probe.path == "/health" and spec.probe.port == 8000
    assert spec.secret_env == ["HF_TOKEN"]
    assert [(m.source, m.target) for m in spec.mounts] == [
        (HF_CACHE_SOURCE, "/root/.cache/huggingface"),
        ("~/.cache/deploy-jit/vllm/vllm", "/root/.cache/vllm"),
        ("~/.cache/deploy-jit/vllm/flashinfer", "/root/.cache/flashinfer"),
        ("~/.cache/deploy-jit/vllm/triton", "/root/.triton"),
    ]
    assert spec.labels[LABEL_DEPLOYMENT] == plan.name
    assert spec.labels[LABEL_PLAN_HASH] == plan.plan_hash()
    assert spec.labels[LABEL_SPEC_HASH] == spec.spec_hash()
    assert spec.group is None


def test_sglang_probes_ready_and_enables_metrics() -> None:
    (spec,) = build_services(scenario("sglang", "tp8"))
    assert spec.entrypoint == ["python3", "-m", "sglang.launch_server"]
    assert _value(spec, "--model-path") == "meta-llama/Llama-3.1-70B-Instruct"
    assert _value(spec, "--tp-size") == "8"
    assert "--enable-metrics" in spec.command
    assert spec.probe.path == "/ready" and spec.probe.port == 30000
    assert spec.gpus == list(range(8))


def test_public_publishes_on_all_interfaces() -> None:
    (spec,) = build_services(scenario("vllm", "1gpu", request={"public": True}))
    assert spec.ports[0].host_ip == "0.0.0.0"


def test_vllm_tp_pp_across_nodes_has_rendezvous_and_headless_worker() -> None:
    services = _by_name(build_services(scenario("vllm", "2node")))
    head, worker = services["serve-0-rank0"], services["serve-0-rank1"]
    for spec, rank in ((head, "0"), (worker, "1")):
        assert _value(spec, "--nnodes") == "2"
        assert _value(spec, "--node-rank") == rank
        assert _value(spec, "--master-addr") == "192.0.2.10"
        assert spec.network_mode == "host" and spec.ports == []
        assert spec.devices == ["/dev/infiniband"] and spec.cap_add == ["IPC_LOCK"]
        assert spec.ulimits == {"memlock": -1, "stack": 67108864}
        assert spec.environment["NCCL_SOCKET_IFNAME"] == "ib0"
        assert "GLOO_SOCKET_IFNAME" not in spec.environment  # not on IPoIB
        assert spec.group == "serve-0"
    assert head.environment["VLLM_HOST_IP"] == "192.0.2.10"
    assert worker.environment["VLLM_HOST_IP"] == "192.0.2.11"
    assert "--headless" in worker.command and "--headless" not in head.command
    assert "--port" not in worker.command
    assert (worker.probe.kind, worker.probe.host) == ("peer", "192.0.2.10")
    assert head.probe.kind == "http"
    assert worker.node == "gpu-b"


def test_sglang_tp_across_nodes_uses_dist_init_addr() -> None:
    services = _by_name(build_services(scenario("sglang", "2node")))
    worker = services["serve-0-rank1"]
    assert _value(worker, "--tp-size") == "16"
    assert _value(worker, "--dist-init-addr") == "192.0.2.10:20000"
    assert _value(worker, "--node-rank") == "1"
    assert worker.environment["SGLANG_HOST_IP"] == "192.0.2.11"


def test_vllm_dp_ep_on_one_node() -> None:
    (spec,) = build_services(scenario("vllm", "dpep"))
    assert _value(spec, "--tensor-parallel-size") == "1"
    assert _value(spec, "--data-parallel-size") == "8"
    assert "--enable-expert-parallel" in spec.command
    assert "--all2all-backend" not in spec.command  # experts stay inside the node


def test_vllm_dp_across_nodes_uses_start_rank_and_deepep() -> None:
    model = "deepseek-r1"
    plan = make_plan(
        engine="vllm",
        model=model,
        node_count=2,
        gpus_per_node=8,
        roles=[
            role(
                "serve",
                model,
                Parallelism(tp=1, dp=16, ep=16, attn_dp=16),
                [replica(0, (0, list(range(8))), (1, list(range(8))))],
            )
        ],
    )
    head, worker = build_services(plan)
    assert _value(head, "--data-parallel-size-local") == "8"
    assert _value(worker, "--data-parallel-start-rank") == "8"
    assert _value(worker, "--data-parallel-address") == "192.0.2.10"
    assert "--headless" in worker.command
    assert _value(head, "--all2all-backend") == "deepep_low_latency"


def test_sglang_wide_ep_across_nodes_uses_deepep() -> None:
    model = "deepseek-r1"
    plan = make_plan(
        engine="sglang",
        model=model,
        node_count=2,
        gpus_per_node=8,
        roles=[
            role(
                "serve",
                model,
                Parallelism(tp=16, ep=16, attn_dp=16),
                [replica(0, (0, list(range(8))), (1, list(range(8))))],
            )
        ],
    )
    head, _ = build_services(plan)
    assert _value(head, "--moe-a2a-backend") == "deepep"
    assert _value(head, "--attn-dp-size") == "16"


def test_sglang_rejects_dp_replicas_across_nodes() -> None:
    model = "llama-3.1-70b"
    plan = make_plan(
        engine="sglang",
        model=model,
        node_count=2,
        gpus_per_node=8,
        roles=[
            role(
                "serve",
                model,
                Parallelism(tp=8, dp=2),
                [replica(0, (0, list(range(8))), (1, list(range(8))))],
            )
        ],
    )
    with pytest.raises(PlanError, match="across nodes"):
        build_services(plan)


def test_vllm_pd_on_one_node() -> None:
    services = _by_name(build_services(scenario("vllm", "pd1node")))
    prefill, decode, router = services["prefill-0"], services["decode-0"], services["router"]
    assert json.loads(_value(prefill, "--kv-transfer-config")) == {
        "kv_connector": "NixlConnector",
        "kv_role": "kv_producer",
        "kv_load_failure_policy": "fail",
    }
    assert json.loads(_value(decode, "--kv-transfer-config"))["kv_role"] == "kv_consumer"
    assert _value(prefill, "--port") == "8100" and _value(decode, "--port") == "8200"
    # Host networking, but nothing needs to be reached from another machine.
    assert _value(prefill, "--host") == "127.0.0.1"
    assert (
        prefill.environment["VLLM_NIXL_SIDE_CHANNEL_PORT"]
        != decode.environment["VLLM_NIXL_SIDE_CHANNEL_PORT"]
    )
    assert prefill.environment["UCX_NET_DEVICES"] == "all"
    assert prefill.gpus == [0, 1, 2, 3] and decode.gpus == [4, 5, 6, 7]
    assert router.image == "vllm/vllm-router:v0.1.17"
    assert router.entrypoint == ["vllm-router"]
    assert router.command == [
        "--vllm-pd-disaggregation",
        "--prefill",
        "http://127.0.0.1:8100",
        "--decode",
        "http://127.0.0.1:8200",
        "--host",
        "127.0.0.1",
        "--port",
        "8000",
    ]
    assert router.depends_on == ["prefill-0", "decode-0"]
    assert router.gpus is None and router.network_mode == "host"


def test_sglang_pd_across_nodes_uses_routable_addresses_and_rdma() -> None:
    services = _by_name(build_services(scenario("sglang", "pd2node")))
    prefill, decode, router = services["prefill-0"], services["decode-0"], services["router"]
    assert _value(prefill, "--disaggregation-mode") == "prefill"
    assert _value(decode, "--disaggregation-mode") == "decode"
    assert _value(prefill, "--disaggregation-transfer-backend") == "mooncake"
    assert _value(prefill, "--disaggregation-ib-device").startswith("mlx5_0,mlx5_1")
    assert _value(prefill, "--disaggregation-bootstrap-port") == "8998"
    # The router hands the prefill address to decode: it must be routable, not loopback.
    assert router.command[:6] == [
        "--pd-disaggregation",
        "--prefill",
        "http://192.0.2.10:30100",
        "8998",
        "--decode",
        "http://192.0.2.11:30200",
    ]
    # The router and decode reach prefill on its node's cluster address, never all interfaces.
    assert _value(prefill, "--host") == "192.0.2.10"
    assert prefill.probe.host == "192.0.2.10"
    assert router.entrypoint == ["python3", "-m", "sglang_router.launch_router"]
    assert router.image == "lmsysorg/sglang:v0.5.23"
    assert prefill.devices == ["/dev/infiniband"]


def test_replicas_get_an_nginx_load_balancer() -> None:
    services = _by_name(build_services(scenario("vllm", "replicas")))
    lb = services["lb"]
    assert lb.image == "nginx:1.27-alpine"
    assert lb.depends_on == ["serve-0", "serve-1"]
    assert lb.probe.port == 8000
    assert [m.target for m in lb.mounts] == ["/etc/nginx/nginx.conf"]
    assert services["serve-0"].ports[0].host == 8001
    assert services["serve-1"].ports[0].host == 8002


def _without_host(argv: list[str]) -> list[str]:
    position = argv.index("--host")
    return argv[:position] + argv[position + 2 :]


def test_simulation_keeps_the_command_and_drops_hardware() -> None:
    plan = scenario("vllm", "pd2node")
    real = _by_name(build_services(plan))
    sim = _by_name(build_services(plan, simulate=True))
    for name, spec in sim.items():
        assert spec.image == SIM_IMAGE
        assert spec.gpus is None and spec.devices == [] and spec.cap_add == []
        assert not spec.privileged and spec.ulimits == {}
        assert spec.entrypoint == real[name].entrypoint
    for name in ("prefill-0", "decode-0"):
        spec = sim[name]
        assert spec.network_mode == "bridge"
        assert spec.ports[0].host == spec.probe.port
        assert float(spec.environment["DEPLOY_SIM_WEIGHTS_GIB"]) > 0
        # Same flags; only the bind address differs (0.0.0.0 inside a bridge container).
        assert _without_host(spec.command) == _without_host(real[name].command)
    # The router reaches each engine at the address its port is published on.
    assert sim["router"].command == real["router"].command
    assert sim["prefill-0"].ports[0].host_ip == "192.0.2.10"


def test_local_model_directory_is_mounted_read_only() -> None:
    base = scenario("vllm", "1gpu")
    model = base.model.model_copy(update={"local_path": "/data/llama", "id": "/data/llama"})
    (spec,) = build_services(scenario("vllm", "1gpu", model_summary=model))
    assert spec.command[0] == "/models/llama"
    mount = next(m for m in spec.mounts if m.target == "/models/llama")
    assert mount.source == "/data/llama" and mount.read_only


def test_user_args_replace_tuning_flags_and_cannot_touch_wiring() -> None:
    plan = scenario(
        "vllm", "1gpu", request={"engine_args": ["--max-model-len", "8192", "--enforce-eager"]}
    )
    (spec,) = build_services(plan)
    assert spec.command.count("--max-model-len") == 1
    assert spec.command[-3:] == ["--max-model-len", "8192", "--enforce-eager"]
    origins = {source.flag: source.origin for source in spec.flags}
    assert origins["--max-model-len"] == "user" and origins["--tensor-parallel-size"] == "resolver"
    with pytest.raises(FlagError, match="--port is set by deploy"):
        build_services(scenario("vllm", "1gpu", request={"engine_args": ["--port", "9000"]}))


def test_every_flag_records_its_origin() -> None:
    for engine in ("vllm", "sglang"):
        for spec in build_services(scenario(engine, "pd2node")):
            flags = [word for word in spec.command if word.startswith("--")]
            recorded = [source.flag for source in spec.flags]
            assert flags == [flag for flag in recorded if flag.startswith("--")]


def test_start_period_follows_the_weights_per_node() -> None:
    plan = scenario("vllm", "2node")
    serve = plan.roles[0]
    assert serve.memory is not None
    expected = serve.memory.weights_gib_per_gpu * 8 / LOAD_RATE_GIB_PER_S + 60 + 90 + 60
    seconds = start_period_s(plan, serve, 8, 2)
    assert seconds % 60 == 0 and expected <= seconds < expected + 60
    # DeepSeek-R1 (642 GiB) over 2 nodes: over 20 minutes.
    r1 = make_plan(
        engine="sglang",
        model="deepseek-r1",
        node_count=2,
        gpus_per_node=8,
        roles=[
            role(
                "serve",
                "deepseek-r1",
                Parallelism(tp=16, ep=16),
                [replica(0, (0, list(range(8))), (1, list(range(8))))],
            )
        ],
    )
    assert start_period_s(r1, r1.roles[0], 8, 2) >= 20 * 60


def test_host_references_resolve_like_compose() -> None:
    assert expand_host_path(HF_CACHE_SOURCE, {"HF_HOME": "/cache"}) == "/cache"
    assert expand_host_path(HF_CACHE_SOURCE, {"HF_HOME": ""}).endswith("/.cache/huggingface")
    assert resolve_refs("${KEY}", ["KEY"], {"KEY": "v"}) == "v"
    assert resolve_refs("${OTHER}", ["KEY"], {"OTHER": "v"}) == "${OTHER}"


def test_secret_references_resolve_for_the_docker_api() -> None:
    from orchestrator.spec import resolved_command, resolved_environment

    host = {"HF_TOKEN": "t", "MY_KEY": "k"}
    (vllm_spec,) = build_services(scenario("vllm", "1gpu", request={"api_key_env": "MY_KEY"}))
    env = resolved_environment(vllm_spec, host)
    assert env["VLLM_API_KEY"] == "k" and env["HF_TOKEN"] == "t" and env["MY_KEY"] == "k"
    assert resolved_command(vllm_spec, host) == vllm_spec.command
    (sglang_spec,) = build_services(scenario("sglang", "1gpu", request={"api_key_env": "MY_KEY"}))
    assert resolved_command(sglang_spec, host) == sglang_spec.command
    assert "k" not in [*(sglang_spec.entrypoint or []), *sglang_spec.command]
    assert resolved_environment(sglang_spec, host)["SGLANG_API_KEY"] == "k"
    assert "HF_TOKEN" not in resolved_environment(sglang_spec, {"MY_KEY": "k"})


def test_healthchecks() -> None:
    services = _by_name(build_services(scenario("vllm", "2node")))
    rank1 = services["serve-0-rank1"]
    assert rank1.probe.kind == "peer" and rank1.probe.port == _value_of(rank1, "--master-port")
    assert healthcheck_test(rank1.probe)[1].startswith("python3 -c ")
    test = healthcheck_test(services["serve-0-rank0"].probe)
    assert test[0] == "CMD-SHELL" and "http://127.0.0.1:8000/health" in test[1]


def _value_of(spec: ServiceSpec, flag: str) -> int:
    return int(spec.command[spec.command.index(flag) + 1])
