"""Plans built by hand for the renderer tests, one per layout the goldens pin.

The planner chooses layouts; these tests pin how a given layout is rendered, so each plan here
states its layout outright (roles, replicas, slices) rather than asking the planner for one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.engines.versions import default_version, image_for
from orchestrator.plan import (
    EngineSummary,
    HardwareSummary,
    MemoryEstimate,
    ModelSummary,
    NodeSlice,
    NodeSummary,
    Parallelism,
    Plan,
    Reason,
    Replica,
    Request,
    Role,
)

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden"

MODELS = {
    "llama-3.1-8b": ModelSummary(
        id="meta-llama/Llama-3.1-8B-Instruct",
        name="llama-3.1-8b",
        params_total=8_030_261_248,
        params_active=8_030_261_248,
        attention="gqa",
        is_moe=False,
        max_context=131072,
        checkpoint_format="bf16",
    ),
    "llama-3.1-70b": ModelSummary(
        id="meta-llama/Llama-3.1-70B-Instruct",
        name="llama-3.1-70b",
        params_total=70_553_706_496,
        params_active=70_553_706_496,
        attention="gqa",
        is_moe=False,
        max_context=131072,
        checkpoint_format="bf16",
    ),
    "llama-3.1-405b": ModelSummary(
        id="meta-llama/Llama-3.1-405B-Instruct",
        name="llama-3.1-405b",
        params_total=405_853_388_800,
        params_active=405_853_388_800,
        attention="gqa",
        is_moe=False,
        max_context=131072,
        checkpoint_format="bf16",
    ),
    "deepseek-r1": ModelSummary(
        id="deepseek-ai/DeepSeek-R1",
        name="deepseek-r1",
        params_total=671_026_419_200,
        params_active=37_552_297_472,
        attention="mla",
        is_moe=True,
        max_context=163840,
        checkpoint_format="fp8",
    ),
}


def _with_facts(summary: ModelSummary) -> ModelSummary:
    """The facts the planner records for renderers: the checkpoint's size and routed experts."""
    from orchestrator.models.lookup import find_model
    from orchestrator.planning.memory.weights import weight_bytes_per_gpu

    profile = find_model(summary.name)
    return summary.model_copy(
        update={
            "checkpoint_bytes": int(weight_bytes_per_gpu(profile, Parallelism())),
            "routed_experts": profile.moe.num_experts if profile.moe is not None else None,
        }
    )


MODELS = {name: _with_facts(summary) for name, summary in MODELS.items()}

# Weights per GPU (GiB) for a model at a given number of GPUs per instance, roughly what the
# memory model gives; only the start period and the simulator's load time read it.
WEIGHTS_GIB = {
    "llama-3.1-8b": 15.0,
    "llama-3.1-70b": 131.5,
    "llama-3.1-405b": 756.0,
    "deepseek-r1": 642.0,
}


def memory(model: str, gpus: int, context: int = 32768) -> MemoryEstimate:
    return MemoryEstimate(
        weights_gib_per_gpu=round(WEIGHTS_GIB[model] / gpus, 3),
        kv_bytes_per_token_per_gpu=65536,
        kv_cache_gib_per_gpu=20.0,
        kv_cache_tokens=327680,
        max_concurrency=10.0,
        overhead_gib_per_gpu=5.0,
        gpu_memory_gib=79.18,
        memory_fraction=0.9,
        context=context,
        kv_gib_per_request=2.0,
        fits=True,
        margin_gib_per_gpu=18.0,
    )


def nodes(count: int, gpus: int, *, rdma: bool = True) -> list[NodeSummary]:
    letters = "abcdefgh"
    return [
        NodeSummary(
            name=f"gpu-{letters[i]}",
            address=f"192.0.2.{10 + i}",
            docker="unix:///var/run/docker.sock" if i == 0 else f"ssh://ops@192.0.2.{10 + i}",
            gpus=gpus,
            network_interface="ib0" if count > 1 else None,
            rdma_devices=[f"mlx5_{n}" for n in range(gpus)] if rdma and count > 1 else [],
        )
        for i in range(count)
    ]


def replica(index: int, *pieces: tuple[int, list[int]]) -> Replica:
    return Replica(
        index=index,
        slices=[NodeSlice(node=f"gpu-{'abcdefgh'[n]}", gpus=gpus) for n, gpus in pieces],
    )


def role(name: str, model: str, par: Parallelism, replicas: list[Replica]) -> Role:
    return Role(name=name, parallelism=par, replicas=replicas, memory=memory(model, par.gpus))


def make_plan(
    *,
    engine: str,
    model: str,
    node_count: int,
    gpus_per_node: int,
    roles: list[Role],
    version: str | None = None,
    name: str | None = None,
    request: dict[str, Any] | None = None,
    model_summary: ModelSummary | None = None,
) -> Plan:
    version = version or default_version(engine)
    serving = next(r for r in roles if r.name in ("serve", "decode"))
    summary = model_summary or MODELS[model]
    return Plan(
        name=name or summary.name,
        model=summary,
        engine=EngineSummary(name=engine, version=version, image=image_for(engine, version)),  # type: ignore[arg-type]
        hardware=HardwareSummary(
            gpu="H100-80GB-SXM",
            gpu_memory_gib=79.18,
            compute_capability="9.0",
            gpu_products=["NVIDIA-H100-80GB-HBM3"],
            gpus_per_node=gpus_per_node,
            nodes=node_count,
            interconnect="nvswitch",
            fabric="infiniband" if node_count > 1 else "none",
            node_list=nodes(node_count, gpus_per_node),
        ),
        request=Request(context=32768, **(request or {})),
        parallelism=serving.parallelism,
        roles=roles,
        memory=serving.memory or memory(model, 1),
        fits=True,
        rationale=[Reason(decision="layout", choice=serving.parallelism.label(), why="test")],
    )


ALL8 = list(range(8))


def scenario(engine: str, layout: str, **overrides: Any) -> Plan:
    """The layouts the golden files pin, for either engine."""
    sglang = engine == "sglang"
    if layout == "1gpu-public-key":
        # One GPU, published on all interfaces, protected by an API key read from $SERVE_KEY.
        request = {"public": True, "api_key_env": "SERVE_KEY", **overrides.pop("request", {})}
        return scenario(engine, "1gpu", request=request, **overrides)
    if layout == "1gpu":
        model, count, per = "llama-3.1-8b", 1, 1
        roles = [role("serve", model, Parallelism(tp=1), [replica(0, (0, [0]))])]
    elif layout == "tp8":
        model, count, per = "llama-3.1-70b", 1, 8
        roles = [role("serve", model, Parallelism(tp=8), [replica(0, (0, ALL8))])]
    elif layout == "2node":
        model, count, per = "llama-3.1-405b", 2, 8
        par = Parallelism(tp=16) if sglang else Parallelism(tp=8, pp=2)
        roles = [role("serve", model, par, [replica(0, (0, ALL8), (1, ALL8))])]
    elif layout == "dpep":
        model, count, per = "deepseek-r1", 1, 8
        par = (
            Parallelism(tp=8, ep=8, attn_dp=8)
            if sglang
            else Parallelism(tp=1, dp=8, ep=8, attn_dp=8)
        )
        roles = [role("serve", model, par, [replica(0, (0, ALL8))])]
    elif layout == "replicas":
        model, count, per = "llama-3.1-8b", 1, 8
        roles = [
            role(
                "serve",
                model,
                Parallelism(tp=4),
                [replica(0, (0, [0, 1, 2, 3])), replica(1, (0, [4, 5, 6, 7]))],
            )
        ]
    elif layout == "pd1node":
        model, count, per = "llama-3.1-8b", 1, 8
        roles = [
            role("prefill", model, Parallelism(tp=4), [replica(0, (0, [0, 1, 2, 3]))]),
            role("decode", model, Parallelism(tp=4), [replica(0, (0, [4, 5, 6, 7]))]),
        ]
    elif layout in ("pd2node-mooncake", "2node-ray"):
        base, option = layout.rsplit("-", 1)
        extra = (
            {"kv_connector": "mooncake"} if option == "mooncake" else {"distributed_backend": "ray"}
        )
        request = {**extra, **overrides.pop("request", {})}
        return scenario(engine, base, request=request, **overrides)
    elif layout == "pd2node":
        model, count, per = "llama-3.1-70b", 2, 8
        roles = [
            role("prefill", model, Parallelism(tp=8), [replica(0, (0, ALL8))]),
            role("decode", model, Parallelism(tp=8), [replica(0, (1, ALL8))]),
        ]
    else:
        raise ValueError(layout)
    return make_plan(
        engine=engine, model=model, node_count=count, gpus_per_node=per, roles=roles, **overrides
    )


LAYOUTS = ["1gpu", "1gpu-public-key", "tp8", "2node", "dpep", "replicas", "pd1node", "pd2node"]
# Options only vLLM renders this way: Mooncake KV transfer, and a Ray cluster across nodes.
VLLM_ONLY_LAYOUTS = ["pd2node-mooncake", "2node-ray"]
SCENARIOS = [(engine, layout) for engine in ("vllm", "sglang") for layout in LAYOUTS] + [
    ("vllm", layout) for layout in VLLM_ONLY_LAYOUTS
]


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
