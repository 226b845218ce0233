"""Prefill/decode disaggregation: split the GPUs into two pools and plan each with the rules.

Decode holds every running request's KV cache for the whole generation, prefill only while a
prompt is processed, so decode gets the larger pool (about two thirds). On multi-node clusters
pools are whole nodes; a large MoE pool spanning nodes runs one wide DP+EP instance (vLLM
`--data-parallel-size N --enable-expert-parallel`, SGLang `--tp N --attn-dp-size N --ep-size N`).
A router (no GPUs) sends each request to a prefill instance, then to a decode instance.
"""

from __future__ import annotations

from orchestrator.errors import PlanError
from orchestrator.hardware.model import Cluster, Node
from orchestrator.plan import NodeSlice, Parallelism, Prediction, Reason, Replica, Role
from orchestrator.planning.resolver.candidates import Candidate
from orchestrator.planning.resolver.context import Workload
from orchestrator.planning.resolver.explain import (
    alternatives,
    decision_reasons,
    fit_reason,
    warnings_for,
)
from orchestrator.planning.resolver.placement import subset_node
from orchestrator.planning.resolver.rules import check_pins
from orchestrator.planning.resolver.select import Resolution, Selection, role_from, select
from orchestrator.planning.resolver.single import resolve_single


def _smallest_instance(work: Workload) -> int | None:
    selection = select(work.with_cluster(work.cluster, max_gpus=work.max_gpus, goal="balanced"))
    fitting = [c.shape.gpus for c in selection.ranked if c.valid and c.fits]
    return min(fitting) if selection.fits and fitting else None


def split_pools(work: Workload, base: int, pinned: dict[str, int]) -> tuple[int, int]:
    """(prefill GPUs, decode GPUs)."""
    usable = work.usable_gpus
    gpn = work.gpus_per_node
    nodes = len(work.nodes)
    if pinned:
        prefill = pinned.get("prefill", usable - pinned.get("decode", 0))
        decode = pinned.get("decode", usable - prefill)
    elif nodes >= 2 and work.max_gpus is None:
        base_nodes = -(-base // gpn)
        prefill_nodes = max(base_nodes, round(nodes / 3))
        decode_nodes = nodes - prefill_nodes
        if decode_nodes < base_nodes:
            raise PlanError(
                f"--disagg needs two pools of {base_nodes} node(s) for {work.model.name}; "
                f"the cluster has {nodes}",
                "add nodes, or drop --disagg",
            )
        prefill, decode = prefill_nodes * gpn, decode_nodes * gpn
    else:
        units = usable // base
        if units < 2:
            raise PlanError(
                f"--disagg needs two instances of {base} GPU(s) for {work.model.name}; "
                f"{usable} are available",
                "add GPUs, or drop --disagg",
            )
        prefill_units = max(1, units // 3)
        prefill, decode = prefill_units * base, (units - prefill_units) * base
    for role, count in (("prefill", prefill), ("decode", decode)):
        if count < base:
            raise PlanError(
                f"the {role} pool has {count} GPU(s); {work.model.name} needs {base} per instance",
                f"use --{role}-gpus {base} or more",
            )
    if prefill + decode > usable:
        raise PlanError(
            f"--prefill-gpus {prefill} + --decode-gpus {decode} exceed the {usable} GPUs available",
            "lower the pool sizes",
        )
    return prefill, decode


def pool_clusters(work: Workload, prefill: int, decode: int) -> tuple[Cluster, Cluster]:
    """Two sub-clusters: whole nodes when the pools are node multiples, else one node split."""
    gpn = work.gpus_per_node
    nodes = work.nodes
    if prefill % gpn == 0 and decode % gpn == 0:
        first = prefill // gpn
        return (
            _cluster(work.cluster, nodes[:first]),
            _cluster(work.cluster, nodes[first : first + decode // gpn]),
        )
    if prefill + decode > gpn:
        raise PlanError(
            f"pools of {prefill} and {decode} GPUs do not split into whole nodes of {gpn}",
            f"use multiples of {gpn} for --prefill-gpus/--decode-gpus",
        )
    node = nodes[0]
    indices = sorted(gpu.index for gpu in node.gpus)
    return (
        _cluster(work.cluster, [subset_node(node, indices[:prefill])]),
        _cluster(work.cluster, [subset_node(node, indices[prefill : prefill + decode])]),
    )


def _cluster(cluster: Cluster, nodes: list[Node]) -> Cluster:
    return cluster.model_copy(update={"nodes": nodes})


def _pool_work(work: Workload, cluster: Cluster, role: str) -> Workload:
    wide = work.model.is_moe and len(cluster.nodes) >= 2
    # Prefill is compute-bound: TP shortens time to first token; decode wants batch room.
    goal = "throughput" if role == "decode" or wide else "latency"
    return work.with_cluster(
        cluster,
        goal=goal,  # type: ignore[arg-type]
        prefer_wide_ep=wide,
        phase=role,
    )


def resolve_disagg(work: Workload, pinned: dict[str, int]) -> Resolution:
    check_pins(work)
    base = _smallest_instance(work)
    if base is None:
        resolution = resolve_single(work)
        resolution.warnings.append(
            "disaggregation skipped: the model does not fit this hardware as one instance"
        )
        return resolution
    prefill_gpus, decode_gpus = split_pools(work, base, pinned)
    prefill_cluster, decode_cluster = pool_clusters(work, prefill_gpus, decode_gpus)
    prefill_work = _pool_work(work, prefill_cluster, "prefill")
    decode_work = _pool_work(work, decode_cluster, "decode")
    prefill, decode = select(prefill_work), select(decode_work)
    roles = [role_from("prefill", prefill), role_from("decode", decode), _router(work)]
    rationale = [fit_reason(decode.chosen, decode.ranked, decode_work, decode.fits)]
    rationale.append(_pool_reason(work, prefill, decode, base))
    for role, selection, pool in (
        ("prefill", prefill, prefill_work),
        ("decode", decode, decode_work),
    ):
        for reason in decision_reasons(selection.chosen, pool):
            rationale.append(reason.model_copy(update={"decision": f"{role} {reason.decision}"}))
    warnings = warnings_for(prefill.chosen, prefill_work, "prefill")
    warnings += warnings_for(decode.chosen, decode_work, "decode")
    separate_nodes = prefill_cluster.nodes[0].name != decode_cluster.nodes[0].name
    if separate_nodes and not work.cluster.has_rdma:
        warnings.append(
            f"KV caches move from prefill to decode over {work.cluster.fabric}: "
            f"declare InfiniBand/RoCE (NIXL/Mooncake) in a cluster file for usable transfer"
        )
    memory = decode.chosen.memory
    assert memory is not None
    return Resolution(
        roles=roles,
        parallelism=decode.chosen.shape.parallelism(),
        memory=memory,
        fits=prefill.fits and decode.fits,
        rationale=rationale,
        alternatives=alternatives(decode.chosen, decode.ranked, decode_work),
        warnings=warnings,
        prediction=_combined(prefill.chosen, decode.chosen, work),
    )


def _combined(prefill: Candidate, decode: Candidate, work: Workload) -> Prediction | None:
    """Both pools as one deployment: the first token after the prefill pool's TTFT and one
    decode step; requests/s the slower pool's."""
    first, then = prefill.forecast, decode.forecast
    if first is None or then is None:
        return None
    _, osl = work.lengths
    isl, _ = work.lengths
    rate = min(first.requests_per_s, then.requests_per_s)
    gpus = prefill.gpus_used + decode.gpus_used
    return Prediction(
        ttft_ms=round(first.ttft_ms + then.tpot_ms, 2),
        tpot_ms=then.tpot_ms,
        output_tokens_per_s=round(rate * osl, 1),
        input_tokens_per_s=round(rate * isl, 1),
        output_tokens_per_s_per_gpu=round(rate * osl / gpus, 1),
        requests_per_s=round(rate, 3),
        max_concurrency=then.max_concurrency,
        bound="prefill-pool" if first.requests_per_s < then.requests_per_s else then.bound,
    )


def _pool_reason(work: Workload, prefill: Selection, decode: Selection, base: int) -> Reason:
    p, d = prefill.chosen, decode.chosen
    choice = (
        f"prefill {p.gpus_used} GPUs ({p.shape.label()} x {len(p.replicas)}), "
        f"decode {d.gpus_used} GPUs ({d.shape.label()} x {len(d.replicas)})"
    )
    why = (
        f"requested with --disagg; decode holds every running request's KV for the whole "
        f"generation, so it gets the larger pool; each pool runs instances of at least {base} GPU(s)"
    )
    if work.model.is_moe and d.shape.ep > work.gpus_per_node:
        why += "; wide EP across the decode pool's nodes spreads the experts thin"
    if p.forecast is not None and d.forecast is not None:
        why += (
            f"; predicted: prefill pool {p.forecast.requests_per_s:.1f} prompts/s, TTFT "
            f"{p.forecast.ttft_ms:.0f} ms; decode pool {d.forecast.requests_per_s:.1f} "
            f"requests/s, TPOT {d.forecast.tpot_ms:.1f} ms"
        )
    return Reason(decision="disaggregation", choice=choice, why=why)


def _router(work: Workload) -> Role:
    node = work.nodes[0].name
    return Role(
        name="router",
        parallelism=Parallelism(),
        replicas=[Replica(index=0, slices=[NodeSlice(node=node, gpus=[])])],
    )
