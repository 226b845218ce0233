"""Layouts on CPU nodes for vLLM's CPU build: TP/PP/DP, where ranks go, which cores they bind.

The rules (vLLM's CPU installation and multi-node docs, vllm/platforms/cpu.py 0.32.0):
- one rank per NUMA node by default: a rank's threads stay on its node's cores and memory, so
  TP defaults to the NUMA node count; a pin may put more ranks on a node (each needs a core);
- an instance spans more nodes only when it has more ranks than a node has NUMA nodes (or the
  model does not fit one node: then pipeline stages go to the other nodes, which need less
  bandwidth between nodes than TP); the remaining nodes hold replicas;
- each rank's OpenMP threads are bound to its own cores (`VLLM_CPU_OMP_THREADS_BIND`, one CPU
  list per local rank, '|'-separated, ranks in vLLM's [DP, PP, TP] order);
- pipeline parallelism only in compile mode: with `--enforce-eager` a PP engine passes /health
  and dies on its first request, so that combination is refused;
- no expert or attention data parallelism is planned on CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from orchestrator.errors import PlanError
from orchestrator.hardware.cpu import CpuSpec, format_cpu_list
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
from orchestrator.planning.cpu.memory import CpuMemory, NodeLoad, check_fits, size
from orchestrator.planning.performance.cpu import CpuInstance, CpuLoad, forecast_cpu
from orchestrator.planning.resolver.context import Workload
from orchestrator.planning.resolver.select import Resolution

MAX_RANKS = 1024
# Docker's 64 MB /dev/shm kills even TP1 (vLLM's CPU engine keeps its message queues there);
# each rank in the container adds its own shared-memory all-reduce buffers.
SHM_BASE_GIB = 1


@dataclass(frozen=True)
class Layout:
    par: Parallelism
    span: int  # nodes one instance spans
    replicas: int


def _spec(node: Node) -> CpuSpec:
    assert node.cpu is not None
    return node.cpu


def check_layout(work: Workload, par: Parallelism, eager: bool) -> None:
    """One-line errors for what vLLM's CPU build or the model refuses."""
    model = work.model
    if par.ep > 1 or par.attn_dp > 1:
        raise PlanError(
            "expert and attention data parallelism are not planned on CPU nodes",
            "drop --ep/--attn-dp; use --tp, --pp or --dp",
        )
    if model.num_attention_heads % par.tp:
        raise PlanError(
            f"--tp {par.tp} does not divide {model.name}'s {model.num_attention_heads} "
            "attention heads",
            "pick a TP size that divides the head count",
        )
    kv = model.num_kv_heads
    if kv % par.tp and par.tp % kv:
        raise PlanError(
            f"--tp {par.tp} does not split {model.name}'s {kv} KV heads evenly",
            "pick a TP size that divides the KV head count or is a multiple of it",
        )
    if par.pp > model.num_layers:
        raise PlanError(
            f"--pp {par.pp} is more stages than {model.name}'s {model.num_layers} layers",
            f"use --pp {model.num_layers} or less",
        )
    if par.pp > 1 and eager:
        raise PlanError(
            "pipeline parallelism on vLLM's CPU build needs compile mode: with --enforce-eager "
            "the engine passes /health and dies on its first request",
            "drop --enforce-eager (and -O0 / --compilation-config), or use --tp instead of --pp",
        )
    if par.tp * par.pp * par.dp > MAX_RANKS:
        raise PlanError(f"{par.label()} is more than {MAX_RANKS} ranks", "use fewer ranks")


def _span(work: Workload, par: Parallelism) -> int | None:
    """Nodes one instance of `par` spans: the fewest that give each NUMA node one rank (or the
    fewest that hold it), splitting ranks (or DP engines) evenly; None when none can."""
    nodes = work.nodes
    ranks = par.tp * par.pp * par.dp
    numa = min(_spec(node).numa_nodes for node in nodes)
    cores = min(_spec(node).cores for node in nodes)

    def splits(k: int) -> bool:
        unit = par.dp if par.dp > 1 else ranks
        return unit % k == 0 and ranks // k <= cores

    wanted = min(len(nodes), math.ceil(ranks / numa))
    order: list[int] = [*range(wanted, len(nodes) + 1), *range(wanted - 1, 0, -1)]
    return next((k for k in order if splits(k)), None)


def _loads(work: Workload, par: Parallelism, span: int) -> list[NodeLoad]:
    ranks_here = par.tp * par.pp * par.dp // span
    engines = [par.dp // span] * span if par.dp > 1 else [1] + [0] * (span - 1)
    return [
        NodeLoad(ranks=ranks_here, engines=engines[index], memory_gib=_spec(node).memory_gib)
        for index, node in enumerate(work.nodes[:span])
    ]


def _size(work: Workload, par: Parallelism, span: int) -> CpuMemory:
    return size(
        work.model,
        par,
        _loads(work, par, span),
        context=work.context,
        quantization=work.quantization,
        kv_cache_dtype=work.kv_cache_dtype,
        memory_fraction=work.memory_fraction,
        concurrency=work.concurrency,
    )


def choose_layout(work: Workload, eager: bool) -> tuple[Layout, CpuMemory, list[Reason]]:
    """The pinned layout, or one rank per NUMA node with PP across nodes when one node is too
    small; replicas on the nodes left over."""
    pins = work.pins
    reasons: list[Reason] = []
    numa = min(_spec(node).numa_nodes for node in work.nodes)
    if pins:
        par = Parallelism(
            tp=pins.get("tp", 1),
            pp=pins.get("pp", 1),
            dp=pins.get("dp", 1),
            ep=pins.get("ep", 1),
            attn_dp=pins.get("attn_dp", 1),
        )
        check_layout(work, par, eager)
        span = _span(work, par)
        if span is None:
            raise PlanError(
                f"{par.label()} ({par.tp * par.pp * par.dp} ranks) cannot be split evenly over "
                f"{len(work.nodes)} CPU node(s) with one core per rank at least",
                "pick sizes whose ranks divide over the nodes, or fewer ranks",
            )
        memory = _size(work, par, span)
        reasons.append(Reason(decision="layout", choice=par.label(), why="pinned"))
    else:
        tp = _default_tp(work, numa)
        span, par, memory = 1, Parallelism(tp=tp), _size(work, Parallelism(tp=tp), 1)
        pp = 1
        while not memory.estimate.fits and pp < len(work.nodes):
            pp += 1
            candidate = Parallelism(tp=tp, pp=pp)
            if pp > work.model.num_layers or (pp > 1 and eager):
                break
            found = _span(work, candidate)
            if found is None:
                continue
            span, par, memory = found, candidate, _size(work, candidate, found)
        why = (
            f"one rank per NUMA node ({numa} per node): each rank's threads and memory stay "
            "on one node's cores"
            if tp == numa
            else f"TP{tp}: the largest size up to {numa} NUMA node(s) that divides the heads"
        )
        reasons.append(Reason(decision="tensor parallel", choice=f"TP{tp}", why=why))
        if par.pp > 1:
            reasons.append(
                Reason(
                    decision="pipeline parallel",
                    choice=f"PP{par.pp} over {span} nodes",
                    why="one node's memory is too small; stages cross nodes once per step, "
                    "TP would cross them twice per layer",
                )
            )
    check_fits(work.model, memory, min(_spec(node).memory_gib for node in work.nodes))
    layout = Layout(par=par, span=span, replicas=max(1, len(work.nodes) // span))
    return layout, memory, reasons


def _default_tp(work: Workload, numa: int) -> int:
    model = work.model
    for tp in range(min(numa, work.model.num_attention_heads), 0, -1):
        heads_ok = model.num_attention_heads % tp == 0
        kv_ok = model.num_kv_heads % tp == 0 or tp % model.num_kv_heads == 0
        cores_ok = tp <= min(_spec(node).cores for node in work.nodes)
        if heads_ok and kv_ok and cores_ok:
            return tp
    return 1


def rank_cpu_lists(spec: CpuSpec, ranks: int) -> list[str]:
    """Each local rank's cores: NUMA nodes split evenly among the ranks when they divide, else
    all cores split in order. Cores left over run the API server and engine core."""
    groups = spec.numa_cpus()
    if ranks % len(groups) == 0:
        per = ranks // len(groups)
        chunks = [_split(group, per) for group in groups]
        return [format_cpu_list(chunk) for group_chunks in chunks for chunk in group_chunks]
    if ranks < len(groups):
        # Fewer ranks than NUMA nodes: each rank gets whole NUMA nodes.
        merged = [[cpu for group in groups[i::ranks] for cpu in group] for i in range(ranks)]
        return [format_cpu_list(sorted(cpus)) for cpus in merged]
    flat = [cpu for group in groups for cpu in group]
    return [format_cpu_list(chunk) for chunk in _split(flat, ranks)]


def _split(cpus: list[int], parts: int) -> list[list[int]]:
    width = max(1, len(cpus) // parts)
    return [cpus[index * width : (index + 1) * width] for index in range(parts)]


def _placement(work: Workload, layout: Layout) -> tuple[list[Replica], list[CpuBinding]]:
    par = layout.par
    ranks_here = par.tp * par.pp * par.dp // layout.span
    replicas: list[Replica] = []
    bindings: list[CpuBinding] = []
    for index in range(layout.replicas):
        members = work.nodes[index * layout.span : (index + 1) * layout.span]
        replicas.append(
            Replica(
                index=index,
                slices=[
                    NodeSlice(node=node.name, gpus=list(range(ranks_here))) for node in members
                ],
            )
        )
        for node in members:
            lists = rank_cpu_lists(_spec(node), ranks_here)
            bindings.append(
                CpuBinding(
                    role="serve", replica=index, node=node.name, omp_threads_bind="|".join(lists)
                )
            )
    return replicas, bindings


def shm_size(par: Parallelism, span: int) -> str:
    ranks_here = par.tp * par.pp * par.dp // span
    return f"{SHM_BASE_GIB * max(1, ranks_here)}g"


def resolve_cpu(work: Workload, *, eager: bool) -> tuple[Resolution, CpuPlan]:
    """A `serve` role on CPU nodes, its memory and prediction, and the CPU part of the plan."""
    layout, memory, reasons = choose_layout(work, eager)
    replicas, bindings = _placement(work, layout)
    par = layout.par
    estimate = memory.estimate
    node = _spec(work.nodes[0])
    ranks_here = par.tp * par.pp * par.dp // layout.span
    cores_each = min(
        _count(cpus) for binding in bindings for cpus in binding.omp_threads_bind.split("|")
    )
    isl, osl = work.lengths
    instance = CpuInstance(
        model=work.model,
        par=par,
        weight_bytes_per_rank=estimate.weights_gib_per_gpu * 2**30,
        kv_bytes_per_token_per_rank=estimate.kv_bytes_per_token_per_gpu,
        rank_bandwidth_gbs=node.bandwidth_gbs * cores_each / node.cores,
        rank_tflops=node.tflops * cores_each / node.cores,
        nnodes=layout.span,
        kv_tokens_per_engine=memory.tokens_per_engine,
        context=work.context,
    )
    prediction = forecast_cpu(
        instance,
        CpuLoad(isl=isl, osl=osl, concurrency=work.load_concurrency, replicas=layout.replicas),
    )
    reasons += [
        Reason(
            decision="placement",
            choice=f"{layout.replicas} instance(s) x {layout.span} node(s), "
            f"{ranks_here} rank(s) per node, {cores_each} core(s) per rank",
            why="each rank's OpenMP threads are bound to its own cores "
            "(VLLM_CPU_OMP_THREADS_BIND); nodes left over hold replicas",
        ),
        Reason(
            decision="KV cache",
            choice=f"VLLM_CPU_KVCACHE_SPACE={memory.kvcache_space_gib} GiB per rank",
            why=f"{memory.tokens_per_engine:,} tokens per engine (blocks of "
            f"{memory.block_size}); unset, vLLM would reserve 0.92 of host memory",
        ),
        Reason(
            decision="prediction",
            choice=f"{prediction.output_tokens_per_s:,.0f} output tok/s, "
            f"TPOT {prediction.tpot_ms:.1f} ms",
            why=f"{prediction.bound}-bound: {node.bandwidth_gbs:g} GB/s and "
            f"{node.tflops:.2f} BF16 TFLOPS per node, shared by core",
        ),
    ]
    role = Role(name="serve", parallelism=par, replicas=replicas, memory=estimate)
    resolution = Resolution(
        roles=[role],
        parallelism=par,
        memory=estimate,
        fits=estimate.fits,
        rationale=reasons,
        prediction=prediction,
        work=work,
    )
    cpu = CpuPlan(
        kvcache_space_gib=memory.kvcache_space_gib,
        kv_cache_tokens_per_engine=memory.tokens_per_engine,
        block_size=memory.block_size,
        shm_size=shm_size(par, layout.span),
        bindings=bindings,
        rank_bandwidth_gbs=round(instance.rank_bandwidth_gbs, 3),
        rank_tflops=round(instance.rank_tflops, 4),
    )
    return resolution, cpu


def _count(cpus: str) -> int:
    from orchestrator.hardware.cpu import parse_cpu_list

    return len(parse_cpu_list(cpus))
