"""Public expert deployments: the planner must reach the layouts practitioners publish.

Each row is (model, hardware, engine, goal) -> the accepted parallelism labels. The plan is
built through `build_plan`, the same call `deploy plan` makes, with the real catalog, memory
estimates and hardware models.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.plan import Plan
from orchestrator.planning.build import build_plan
from orchestrator.planning.request import PlanRequest

from .conftest import cluster_file

TWO_NODE_IB = str(cluster_file("two-node-h100-ib"))
TWELVE_NODE_IB = str(cluster_file("twelve-node-h100-ib"))

# (id, request options, accepted labels of the top-level parallelism)
EXPERT_TABLE: list[tuple[str, dict[str, Any], set[str]]] = [
    ("qwen3-32b-2xh100-balanced", {"model": "qwen3-32b", "gpus": "2xH100"}, {"TP2"}),
    (
        "qwen3-32b-2xh100-throughput",
        {"model": "qwen3-32b", "gpus": "2xH100", "goal": "throughput"},
        {"TP2", "TP1"},
    ),
    (
        "deepseek-r1-8xh200-latency",
        {"model": "deepseek-r1", "gpus": "8xH200", "goal": "latency"},
        # Plain TP8 is the published vLLM latency deployment on 8xH200 (dstack's DeepSeek-R1
        # study: `vllm serve deepseek-ai/DeepSeek-R1 --tensor-parallel-size 8`).
        {"TP8×EP8", "TP8"},
    ),
    (
        "deepseek-r1-8xh200-throughput",
        {"model": "deepseek-r1", "gpus": "8xH200", "goal": "throughput"},
        {"TP1×DP8×EP8"},
    ),
    (
        "deepseek-r1-2x8h100-sglang-latency",
        {"model": "deepseek-r1", "cluster": TWO_NODE_IB, "engine": "sglang", "goal": "latency"},
        {"TP16×EP16", "TP16"},
    ),
    # Throughput on two H100 nodes: attention DP with EP. TP16xADP16xEP16 holds R1 at 32k
    # only above SGLang's own reserve (MLA prefill graphs, DeepEP buffers; 0.5.19+ memory hook),
    # as each GPU keeps the whole attention; one DP8 group per PP stage keeps the experts inside
    # a node instead.
    (
        "deepseek-r1-2x8h100-sglang-throughput",
        {"model": "deepseek-r1", "cluster": TWO_NODE_IB, "engine": "sglang", "goal": "throughput"},
        {"TP16×ADP16×EP16", "TP16×ADP8×EP16", "TP8×PP2×ADP8×EP8"},
    ),
    (
        "llama-405b-2x8h100-vllm",
        {"model": "llama-3.1-405b", "gpus": "8xH100", "nodes": 2},
        {"TP8×PP2"},
    ),
    (
        "llama-405b-2x8h100-vllm-infiniband",
        {"model": "llama-3.1-405b", "cluster": TWO_NODE_IB},
        {"TP8×PP2"},
    ),
    ("llama-3-70b-2x96gb-pcie", {"model": "llama-3-70b", "gpus": "2xRTX-PRO-6000"}, {"TP2"}),
    ("llama-3-70b-2x94gb-nvl", {"model": "llama-3-70b", "gpus": "2xH100-NVL"}, {"TP2"}),
    ("llama-3-70b-4x48gb-l40s", {"model": "llama-3-70b", "gpus": "4xL40S"}, {"TP4"}),
    ("llama-3-70b-4x48gb-ada", {"model": "llama-3-70b", "gpus": "4xRTX6000-ADA"}, {"TP4"}),
    ("gpt-oss-120b-1xh100", {"model": "gpt-oss-120b", "gpus": "1xH100"}, {"TP1"}),
]


@pytest.mark.parametrize(
    ("options", "accepted"),
    [pytest.param(options, accepted, id=name) for name, options, accepted in EXPERT_TABLE],
)
def test_expert_layout(options: dict[str, Any], accepted: set[str]) -> None:
    plan = build_plan(PlanRequest(**options))
    assert plan.fits, plan.suggestion
    assert plan.parallelism.label() in accepted
    assert plan.role("serve") is not None
    decisions = [reason.decision for reason in plan.rationale]
    for decision in (
        "fit",
        "tensor parallel",
        "pipeline parallel",
        "data parallel / replicas",
        "expert parallel",
        "attention data parallel",
        "placement",
        "disaggregation",
    ):
        assert decision in decisions


def test_vllm_moe_ep_flags_follow_tp_times_dp() -> None:
    plan = build_plan(PlanRequest(model="deepseek-r1", gpus="8xH200", goal="throughput"))
    par = plan.parallelism
    assert (par.tp, par.dp, par.ep, par.attn_dp) == (1, 8, 8, 8)


def test_tp16_across_ethernet_loses_with_the_reason() -> None:
    plan = build_plan(
        PlanRequest(model="deepseek-r1", gpus="8xH100", nodes=2, engine="sglang", goal="latency")
    )
    # SGLang's DeepSeek recipe on H100 nodes is plain TP (no EP); without RDMA the TP16 of
    # that recipe loses to one TP8 stage per node.
    assert plan.parallelism.label() == "TP8×PP2"
    reasons = {alt.summary.split(" ")[0]: alt.lost_because for alt in plan.alternatives}
    assert reasons["TP16"] == (
        "TP16 spans nodes: needs InfiniBand/RoCE between nodes; cluster says ethernet"
    )


def _disagg(engine: str) -> Plan:
    return build_plan(
        PlanRequest(model="deepseek-v3", cluster=TWELVE_NODE_IB, disagg=True, engine=engine)
    )


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_deepseek_v3_twelve_nodes_disaggregated_wide_ep(engine: str) -> None:
    plan = _disagg(engine)
    assert plan.fits
    assert [role.name for role in plan.roles] == ["prefill", "decode", "router"]
    prefill, decode, router = plan.roles
    prefill_gpus = prefill.parallelism.gpus * len(prefill.replicas)
    decode_gpus = decode.parallelism.gpus * len(decode.replicas)
    assert decode_gpus > prefill_gpus
    assert prefill_gpus + decode_gpus == 96
    # Wide EP: one instance per pool, experts spread over every GPU of the pool.
    assert len(decode.replicas) == 1 and decode.parallelism.ep == decode_gpus
    assert len(prefill.replicas) == 1 and prefill.parallelism.ep == prefill_gpus
    assert plan.parallelism == decode.parallelism
    assert plan.memory == decode.memory
    if engine == "vllm":
        assert (decode.parallelism.tp, decode.parallelism.dp) == (1, decode_gpus)
    else:
        assert decode.parallelism.attn_dp == decode.parallelism.tp == decode_gpus
    prefill_nodes = {s.node for r in prefill.replicas for s in r.slices}
    decode_nodes = {s.node for r in decode.replicas for s in r.slices}
    assert not prefill_nodes & decode_nodes
    assert router.replicas[0].slices[0].gpus == []


def test_disaggregated_pools_on_one_node() -> None:
    plan = build_plan(PlanRequest(model="llama-3.1-8b", gpus="8xH100", disagg=True))
    prefill, decode = plan.role("prefill"), plan.role("decode")
    assert prefill is not None and decode is not None
    used = [
        g for role in (prefill, decode) for r in role.replicas for s in r.slices for g in s.gpus
    ]
    assert sorted(used) == list(range(8))
    assert decode.parallelism.gpus * len(decode.replicas) == 6


def test_pinned_pools_are_honoured() -> None:
    plan = build_plan(
        PlanRequest(model="llama-3.1-8b", gpus="8xH100", disagg=True, prefill_gpus=4, decode_gpus=4)
    )
    prefill, decode = plan.role("prefill"), plan.role("decode")
    assert prefill is not None and decode is not None
    assert prefill.parallelism.gpus * len(prefill.replicas) == 4
    assert decode.parallelism.gpus * len(decode.replicas) == 4


@pytest.mark.parametrize(
    "options", [pytest.param(options, id=name) for name, options, _ in EXPERT_TABLE]
)
def test_alternatives_are_other_layouts_with_a_reason(options: dict[str, Any]) -> None:
    plan = build_plan(PlanRequest(**options))
    chosen = f"{plan.parallelism.label()} x "
    summaries = [alt.summary for alt in plan.alternatives]
    assert len(summaries) == len(set(summaries))
    for alternative in plan.alternatives:
        assert alternative.lost_because
        assert not (
            alternative.summary.startswith(chosen)
            and alternative.summary.split(" (")[0] == f"{chosen}{len(plan.roles[0].replicas)}"
        )


def test_disagg_that_cannot_fit_falls_back_with_a_warning() -> None:
    plan = build_plan(PlanRequest(model="llama-3.1-405b", gpus="8xH100", disagg=True))
    assert not plan.fits
    assert plan.suggestion is not None
    assert (
        "disaggregation skipped: the model does not fit this hardware as one instance"
        in plan.warnings
    )
