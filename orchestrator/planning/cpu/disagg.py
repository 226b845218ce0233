"""Prefill/decode on CPU nodes: one prefill and one decode engine behind the PD router.

With two nodes or more, prefill runs on the first and decode on the second; on one node the
two engines split its cores in halves (prefill first), so their threads never share a core.
KV caches move with NIXL over TCP (vLLM's NixlConnector; UCX over sockets when there is no
RDMA), rendered by the vLLM renderer as on GPUs. Only `--tp` is pinned per engine; the KV space
is the same for both engines (the decode engine holds what prefill computed).
"""

from __future__ import annotations

from orchestrator.errors import PlanError
from orchestrator.hardware.cpu import CpuSpec, format_cpu_list, parse_cpu_list
from orchestrator.hardware.model import Node
from orchestrator.plan import (
    CpuBinding,
    CpuPlan,
    NodeSlice,
    Parallelism,
    Reason,
    Replica,
    Role,
)
from orchestrator.planning.cpu.memory import NodeLoad, check_fits, size
from orchestrator.planning.cpu.resolve import check_layout, shm_size
from orchestrator.planning.performance.cpu import (
    FRONT_END_S,
    CpuInstance,
    CpuLoad,
    decode_step_s,
    forecast_cpu,
    prefill_s,
)
from orchestrator.planning.resolver.context import Workload
from orchestrator.planning.resolver.select import Resolution


def _spec(node: Node) -> CpuSpec:
    assert node.cpu is not None
    return node.cpu


def _lists(cpus: list[int], ranks: int) -> list[str]:
    width = len(cpus) // ranks
    return [format_cpu_list(cpus[index * width : (index + 1) * width]) for index in range(ranks)]


def resolve_cpu_disagg(work: Workload, *, eager: bool) -> tuple[Resolution, CpuPlan]:
    extra = sorted(set(work.pins) - {"tp"})
    if extra:
        raise PlanError(
            f"--{extra[0].replace('_', '-')} is not planned for prefill/decode on CPU nodes",
            "pin only --tp (each engine's tensor parallel size), or drop --disagg",
        )
    tp = work.pins.get("tp", 1)
    par = Parallelism(tp=tp)
    check_layout(work, par, eager)
    nodes = work.nodes
    shared = len(nodes) < 2
    prefill_node, decode_node = (nodes[0], nodes[0]) if shared else (nodes[0], nodes[1])
    if shared:
        cores = [cpu for group in _spec(prefill_node).numa_cpus() for cpu in group]
        if len(cores) < 2 * tp:
            raise PlanError(
                f"prefill and decode with TP{tp} each need {2 * tp} cores on one node; "
                f"{prefill_node.name} has {len(cores)}",
                "add a node for decode (a cluster file), or lower --tp",
            )
        half = len(cores) // 2
        prefill_lists, decode_lists = _lists(cores[:half], tp), _lists(cores[half:], tp)
        loads = [NodeLoad(ranks=2 * tp, engines=2, memory_gib=_spec(prefill_node).memory_gib)]
    else:
        prefill_lists = _lists([c for g in _spec(prefill_node).numa_cpus() for c in g], tp)
        decode_lists = _lists([c for g in _spec(decode_node).numa_cpus() for c in g], tp)
        loads = [
            NodeLoad(ranks=tp, engines=1, memory_gib=_spec(node).memory_gib)
            for node in (prefill_node, decode_node)
        ]
    if not all(prefill_lists + decode_lists):
        raise PlanError(
            f"TP{tp} leaves a rank without a core", "lower --tp or give the nodes more cores"
        )
    memory = size(
        work.model,
        par,
        loads,
        context=work.context,
        quantization=work.quantization,
        kv_cache_dtype=work.kv_cache_dtype,
        memory_fraction=work.memory_fraction,
        concurrency=work.concurrency,
    )
    check_fits(work.model, memory, min(load.memory_gib for load in loads))
    estimate = memory.estimate
    ranks = list(range(tp))
    roles = [
        Role(
            name="prefill",
            parallelism=par,
            replicas=[Replica(index=0, slices=[NodeSlice(node=prefill_node.name, gpus=ranks)])],
            memory=estimate,
        ),
        Role(
            name="decode",
            parallelism=par,
            replicas=[Replica(index=0, slices=[NodeSlice(node=decode_node.name, gpus=ranks)])],
            memory=estimate,
        ),
        Role(
            name="router",
            parallelism=Parallelism(),
            replicas=[Replica(index=0, slices=[NodeSlice(node=nodes[0].name, gpus=[])])],
        ),
    ]
    bindings = [
        CpuBinding(
            role="prefill",
            replica=0,
            node=prefill_node.name,
            omp_threads_bind="|".join(prefill_lists),
        ),
        CpuBinding(
            role="decode", replica=0, node=decode_node.name, omp_threads_bind="|".join(decode_lists)
        ),
    ]
    spec = _spec(decode_node)
    cores_each = len(parse_cpu_list(decode_lists[0]))
    instance = CpuInstance(
        model=work.model,
        par=par,
        weight_bytes_per_rank=estimate.weights_gib_per_gpu * 2**30,
        kv_bytes_per_token_per_rank=estimate.kv_bytes_per_token_per_gpu,
        rank_bandwidth_gbs=spec.bandwidth_gbs * cores_each / spec.cores,
        rank_tflops=spec.tflops * cores_each / spec.cores,
        nnodes=1,
        kv_tokens_per_engine=memory.tokens_per_engine,
        context=work.context,
    )
    isl, osl = work.lengths
    decode = forecast_cpu(
        instance, CpuLoad(isl=isl, osl=osl, concurrency=work.load_concurrency, replicas=1)
    )
    # The first token: the prefill engine's prompt alone, then one decode step.
    ttft = FRONT_END_S + prefill_s(instance, isl) + decode_step_s(instance, 1, isl)[0]
    prediction = decode.model_copy(
        update={
            "ttft_ms": round(ttft * 1000, 2),
            "output_tokens_per_s_per_gpu": round(decode.output_tokens_per_s / (2 * tp), 2),
        }
    )
    where = (
        f"both on {prefill_node.name}, cores split in halves"
        if shared
        else (f"prefill on {prefill_node.name}, decode on {decode_node.name}")
    )
    rationale = [
        Reason(decision="disaggregation", choice=f"prefill TP{tp} + decode TP{tp}", why=where),
        Reason(
            decision="KV transfer",
            choice="NixlConnector over TCP",
            why="vLLM's CPU build moves KV caches with NIXL; without RDMA UCX uses sockets",
        ),
        Reason(
            decision="KV cache",
            choice=f"VLLM_CPU_KVCACHE_SPACE={memory.kvcache_space_gib} GiB per rank",
            why=f"{memory.tokens_per_engine:,} tokens per engine (blocks of {memory.block_size})",
        ),
    ]
    resolution = Resolution(
        roles=roles,
        parallelism=par,
        memory=estimate,
        fits=estimate.fits,
        rationale=rationale,
        prediction=prediction,
        work=work,
    )
    cpu = CpuPlan(
        kvcache_space_gib=memory.kvcache_space_gib,
        kv_cache_tokens_per_engine=memory.tokens_per_engine,
        block_size=memory.block_size,
        shm_size=shm_size(par, 1),
        bindings=bindings,
        rank_bandwidth_gbs=round(instance.rank_bandwidth_gbs, 3),
        rank_tflops=round(instance.rank_tflops, 4),
    )
    return resolution, cpu
