"""Speed of vLLM's CPU build: TTFT, TPOT and throughput from a host's memory bandwidth and FLOPs.

Each rank runs on its own cores and streams its weight shard and its requests' KV from host
memory every decode step, so a step costs the larger of the bytes over the rank's share of the
memory bandwidth and the FLOPs over its share of the peak, plus the engine's fixed work per step
(scheduling, sampling, Python) and, with TP, two all-reduces per layer through shared memory
(gloo over TCP across nodes). Pipeline stages run one after another for one token. Prefill is
compute-bound. Under a closed-loop load the TPOT also carries the prefills chunked into the
running batch, as in the GPU model (`serving.py`); Little's law gives the request rate.

The efficiencies and fixed costs are constants here, stated with where they come from; the
same `Prediction` shape as on GPUs lets `deploy bench` put measurement beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from orchestrator.plan import Parallelism, Plan, Prediction
from orchestrator.schema import ModelProfile

GIB = 2**30
# Fractions of the peaks a CPU decode step reaches: streaming reads through oneDNN/IPEX GEMV
# kernels reach ~60% of STREAM bandwidth; BF16 GEMMs reach ~40% of the AVX-512/AMX peak.
BANDWIDTH_EFFICIENCY = 0.6
COMPUTE_EFFICIENCY = 0.4
# Fixed cost of one engine step on CPU (scheduler, input preparation, sampling, detokenizing
# in the API server), and of each layer's kernel calls: CPU kernels are launched from Python,
# with no CUDA graph to batch them. Calibrated on deploy-vllm-cpu:0.32.0 with a 2-layer model
# on a 2-core AVX-512 host (`deploy bench`, 128 in / 64 out): TPOT 7.9 ms at concurrency 1,
# 10.0 ms at 4; TTFT 46 ms at 1.
STEP_OVERHEAD_S = 0.007
LAYER_OVERHEAD_S = 0.0002
# A request's way in before its prefill: HTTP, tokenizing, the engine core's queue.
FRONT_END_S = 0.02
# One all-reduce of a decode step's activations: vLLM's CPU shared-memory all-reduce within a
# node; gloo over TCP between nodes.
ALLREDUCE_SHM_S = 0.00004
ALLREDUCE_TCP_S = 0.0004
# Activations handed to the next pipeline stage, per step.
PP_HANDOFF_SHM_S = 0.0002
PP_HANDOFF_TCP_S = 0.001
# vLLM's CPU defaults for the OpenAI server (vllm/engine/arg_utils.py): per world size.
MAX_NUM_SEQS_PER_RANK = 128


@dataclass(frozen=True)
class CpuInstance:
    """One engine instance on CPU ranks, as the planner sized it."""

    model: ModelProfile
    par: Parallelism
    weight_bytes_per_rank: float
    kv_bytes_per_token_per_rank: int
    rank_bandwidth_gbs: float
    rank_tflops: float
    nnodes: int
    kv_tokens_per_engine: int
    context: int


@dataclass(frozen=True)
class CpuLoad:
    isl: float
    osl: float
    # Requests in flight across the deployment; None: as many as the engines hold (or, with
    # `request_rate`, as many as that rate keeps in the system).
    concurrency: int | None
    replicas: int
    request_rate: float | None = None


def _stage_layers(instance: CpuInstance) -> int:
    return math.ceil(instance.model.num_layers / instance.par.pp)


def _active_flops_per_token(instance: CpuInstance) -> float:
    """FLOPs of one token on one rank: 2 x active parameters over the TP x PP shards."""
    return 2.0 * instance.model.params_active / (instance.par.tp * instance.par.pp)


def decode_step_s(instance: CpuInstance, batch: int, mean_tokens: float) -> tuple[float, str]:
    """Seconds per decode step for `batch` running requests of `mean_tokens` each."""
    bytes_read = instance.weight_bytes_per_rank + (
        batch * mean_tokens * instance.kv_bytes_per_token_per_rank
    )
    memory_s = bytes_read / (instance.rank_bandwidth_gbs * 1e9 * BANDWIDTH_EFFICIENCY)
    compute_s = (
        _active_flops_per_token(instance)
        * batch
        / (instance.rank_tflops * 1e12 * COMPUTE_EFFICIENCY)
    )
    layers = _stage_layers(instance)
    stage = max(memory_s, compute_s) + layers * LAYER_OVERHEAD_S
    if instance.par.tp > 1:
        reduce = ALLREDUCE_TCP_S if instance.nnodes > 1 else ALLREDUCE_SHM_S
        stage += 2 * layers * reduce
    pipeline = instance.par.pp * stage
    if instance.par.pp > 1:
        handoff = PP_HANDOFF_TCP_S if instance.nnodes > 1 else PP_HANDOFF_SHM_S
        pipeline += (instance.par.pp - 1) * handoff
    bound = "memory-bandwidth" if memory_s >= compute_s else "compute"
    return STEP_OVERHEAD_S + pipeline, bound


def prefill_s(instance: CpuInstance, tokens: int) -> float:
    """One prompt of `tokens` alone: compute over every stage, weights read once per stage."""
    flops = _active_flops_per_token(instance) * tokens
    compute_s = flops / (instance.rank_tflops * 1e12 * COMPUTE_EFFICIENCY)
    memory_s = instance.weight_bytes_per_rank / (
        instance.rank_bandwidth_gbs * 1e9 * BANDWIDTH_EFFICIENCY
    )
    return STEP_OVERHEAD_S + instance.par.pp * (
        max(compute_s, memory_s) + _stage_layers(instance) * LAYER_OVERHEAD_S
    )


def forecast_cpu(instance: CpuInstance, load: CpuLoad) -> Prediction:
    """TTFT, TPOT and throughput of `load.replicas` instances under a closed-loop load."""
    engines = max(1, instance.par.dp) * load.replicas
    world = instance.par.tp * instance.par.pp
    per_request = math.ceil(load.isl + load.osl)
    kv_cap = max(1, instance.kv_tokens_per_engine // max(1, min(per_request, instance.context)))
    engine_cap = int(min(MAX_NUM_SEQS_PER_RANK * world, kv_cap))
    wanted = load.concurrency if load.concurrency is not None else engine_cap * engines
    batch = int(max(1, min(engine_cap, math.ceil(wanted / engines))))
    isl, osl = max(1, round(load.isl)), max(1.0, load.osl)
    mean_tokens = isl + osl / 2
    prompt = prefill_s(instance, isl)

    def timing(running: int) -> tuple[float, float, str]:
        step, bound = decode_step_s(instance, running, mean_tokens)
        return FRONT_END_S + prompt + step / 2, step + (running - 1) * prompt / osl, bound

    if load.request_rate is not None and load.concurrency is None:
        # Open loop: the batch is the fixed point B = rate per engine x time in system.
        batch = 1
        for _ in range(12):
            ttft, tpot, _ = timing(batch)
            batch = int(
                max(1, min(engine_cap, round(load.request_rate / engines * (ttft + osl * tpot))))
            )
    ttft, tpot, bound = timing(batch)
    if load.concurrency is not None and load.concurrency > engine_cap * engines:
        bound = "kv-capacity" if kv_cap < MAX_NUM_SEQS_PER_RANK * world else "max-num-seqs"
    request_s = ttft + osl * tpot
    requests_per_s = engines * batch / request_s
    if load.request_rate is not None and load.concurrency is None:
        requests_per_s = min(requests_per_s, load.request_rate)
    output = requests_per_s * osl
    ranks = world * engines
    return Prediction(
        ttft_ms=round(ttft * 1000, 2),
        tpot_ms=round(tpot * 1000, 3),
        output_tokens_per_s=round(output, 2),
        input_tokens_per_s=round(requests_per_s * isl, 2),
        output_tokens_per_s_per_gpu=round(output / ranks, 2),
        requests_per_s=round(requests_per_s, 4),
        max_concurrency=batch * engines,
        bound=bound,
    )


def predict_cpu_plan(
    plan: Plan,
    *,
    isl: float,
    osl: float,
    concurrency: int | None = None,
    request_rate: float | None = None,
) -> Prediction | None:
    """The prediction for a CPU plan at other lengths and load (`deploy bench` beside each
    measured level); None when the model cannot be found again."""
    from orchestrator.errors import DeployError
    from orchestrator.models.lookup import find_model

    cpu = plan.cpu
    role = plan.role("serve") or plan.role("decode")
    if cpu is None or role is None or not role.replicas:
        return None
    try:
        model = find_model(plan.model.local_path or plan.model.name)
    except DeployError:
        return None
    memory = role.memory or plan.memory
    instance = CpuInstance(
        model=model,
        par=role.parallelism,
        weight_bytes_per_rank=memory.weights_gib_per_gpu * GIB,
        kv_bytes_per_token_per_rank=memory.kv_bytes_per_token_per_gpu,
        rank_bandwidth_gbs=cpu.rank_bandwidth_gbs,
        rank_tflops=cpu.rank_tflops,
        nnodes=len(role.replicas[0].slices),
        kv_tokens_per_engine=cpu.kv_cache_tokens_per_engine,
        context=memory.context,
    )
    load = CpuLoad(
        isl=isl,
        osl=osl,
        concurrency=concurrency,
        replicas=len(role.replicas),
        request_rate=request_rate,
    )
    return forecast_cpu(instance, load)
