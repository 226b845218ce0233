"""Ranking: which valid layout a goal prefers, and in words why another one lost.

A goal is an ordered list of criteria. Each criterion maps a candidate to a number (lower is
better) and knows how to say why a worse value loses. Candidates are compared criterion by
criterion, so the first criterion where a runner-up is worse is exactly its reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.planning.performance import Forecast
from orchestrator.planning.resolver.candidates import Candidate
from orchestrator.planning.resolver.context import Workload
from orchestrator.planning.resolver.predict import short


@dataclass(frozen=True)
class Criterion:
    name: str
    value: Callable[[Candidate, Workload], float]
    # (loser, winner, work) -> why the loser is worse on this criterion
    why: Callable[[Candidate, Candidate, Workload], str]
    # Values are predictions in log space: within TIE_STEP of the field's best they tie.
    relative: bool = False


def _shortfall(c: Candidate, w: Candidate, work: Workload) -> str:
    memory = c.memory
    if memory is None:
        return "does not fit"
    return (
        f"does not fit: {memory.weights_gib_per_gpu:.1f} GiB of weights per GPU leave "
        f"{memory.margin_gib_per_gpu:+.1f} GiB for one {work.context}-token request"
    )


def _capacity(c: Candidate, w: Candidate, work: Workload) -> str:
    return (
        f"holds {c.capacity:.1f} requests of {work.context} tokens; "
        f"{work.needed_concurrency} needed"
    )


def _is_dp_ep(c: Candidate) -> bool:
    return c.shape.dp > 1 and c.shape.ep > 1


def _vllm_tp_across_nodes(c: Candidate, work: Workload) -> float:
    per_node = c.shape.gpus // c.nnodes
    return float(work.engine == "vllm" and c.shape.tp > per_node)


FITS = Criterion("fits", lambda c, work: float(not c.fits), _shortfall)
MEETS = Criterion("meets", lambda c, work: float(not c.meets(work)), _capacity)
SOFT = Criterion("soft", lambda c, work: float(len(c.soft)), lambda c, w, work: c.soft[0])
NODES = Criterion(
    "nodes",
    lambda c, work: float(c.nnodes),
    lambda c, w, work: f"spans {c.nnodes} nodes per instance where {w.nnodes} suffice",
)
VLLM_PP_ACROSS_NODES = Criterion(
    "vllm-pp",
    _vllm_tp_across_nodes,
    lambda c, w, work: "vLLM's multi-node path is TP inside a node x PP across nodes",
)
DOMAIN = Criterion(
    "domain",
    lambda c, work: float(not c.tp_in_domain),
    lambda c, w, work: f"TP{c.shape.tp} crosses NVLink domains (slower all-reduce)",
)
INSTANCE_GPUS = Criterion(
    "instance-gpus",
    lambda c, work: float(c.shape.gpus),
    lambda c, w, work: (
        f"{c.shape.gpus} GPUs per instance where {w.shape.gpus} hold the model "
        f"({len(c.replicas)} instance(s) instead of {len(w.replicas)})"
    ),
)
WIDER_TP = Criterion(
    "wider-tp",
    lambda c, work: -float(c.shape.tp),
    lambda c, w, work: (
        f"TP{c.shape.tp} splits each token over fewer GPUs than TP{w.shape.tp} (higher latency)"
    ),
)
LESS_PP = Criterion(
    "less-pp",
    lambda c, work: float(c.shape.pp),
    lambda c, w, work: f"PP{c.shape.pp} adds pipeline bubbles where PP{w.shape.pp} suffices",
)
LESS_DP = Criterion(
    "less-dp",
    lambda c, work: float(c.shape.dp),
    lambda c, w, work: f"DP{c.shape.dp} gives each request fewer GPUs than TP",
)
EP_ON = Criterion(
    "ep",
    lambda c, work: float(work.model.is_moe and c.shape.ep == 1 and c.shape.gpus > 1),
    lambda c, w, work: "slices every expert across ranks instead of placing experts whole (EP)",
)
NO_ATTN_DP = Criterion(
    "no-attn-dp",
    lambda c, work: float(c.shape.attn_dp > 1 and c.shape.attn_dp != c.shape.dp),
    lambda c, w, work: "attention-DP trades per-request latency for batch size",
)
DP_EP = Criterion(
    "dp-ep",
    lambda c, work: float(work.model.is_moe and not _is_dp_ep(c)),
    lambda c, w, work: "no DP+EP: attention is not data-parallel, so batches are smaller",
)
WIDER_DP = Criterion(
    "wider-dp",
    lambda c, work: -float(c.shape.dp),
    lambda c, w, work: f"DP{c.shape.dp} runs fewer attention batches than DP{w.shape.dp}",
)
ATTN_DP = Criterion(
    "attn-dp",
    lambda c, work: float(c.shape.attn_dp <= 1),
    lambda c, w, work: (
        "no attention-DP: the MLA latent is not sharded by TP, so KV capacity stays per rank"
    ),
)
WIDER_EP = Criterion(
    "wider-ep",
    lambda c, work: -float(c.shape.ep),
    lambda c, w, work: f"EP{c.shape.ep} is narrower than the pool (EP{w.shape.ep})",
)
MORE_REPLICAS = Criterion(
    "replicas",
    lambda c, work: -float(len(c.replicas)),
    lambda c, w, work: f"{len(c.replicas)} instance(s) where {len(w.replicas)} fit",
)
MORE_CAPACITY = Criterion(
    "capacity",
    lambda c, work: -round(c.capacity, 3),
    lambda c, w, work: (
        f"holds {c.capacity:.1f} full-context requests, {w.capacity:.1f} for the choice"
    ),
)

# Predicted performance (docs/performance.md). Layouts without an estimate sort last.
WORST = 1e18


def _forecast(c: Candidate) -> Forecast | None:
    return c.forecast if c.memory is not None else None


# Predictions within 2 % of each other are ties (numerically the same layout cost), so the
# simpler layout (fewer GPUs per instance, then the shape order) wins them.
TIE_STEP = math.log(1.02)


def _value(c: Candidate, attribute: str, sign: float, per: float = 1.0) -> float:
    result = _forecast(c)
    if result is None:
        return WORST
    figure = float(getattr(result, attribute)) / per
    return sign * math.log(max(figure, 1e-9))


def _versus(c: Candidate, w: Candidate, text: str) -> str:
    loser, winner = _forecast(c), _forecast(w)
    if loser is None or winner is None:
        return text
    return f"{text}: {short(loser)} vs {short(winner)} for {w.shape.label()} x {len(w.replicas)}"


def _ratio(c: Candidate, w: Candidate, attribute: str) -> str:
    loser, winner = _forecast(c), _forecast(w)
    if loser is None or winner is None:
        return ""
    a, b = float(getattr(loser, attribute)), float(getattr(winner, attribute))
    return f" ({(a - b) / b * 100:+.0f}%)" if b else ""


def _misses(c: Candidate, work: Workload) -> list[str]:
    result = _forecast(c)
    ttft, tpot = work.slo
    if result is None:
        return ["no estimate"]
    missed = []
    if ttft is not None and result.ttft_ms > ttft:
        missed.append(f"TTFT {result.ttft_ms:.0f} ms > {ttft:.0f} ms")
    if tpot is not None and result.tpot_ms > tpot:
        missed.append(f"TPOT {result.tpot_ms:.1f} ms > {tpot:.0f} ms")
    return missed


SLO_MET = Criterion(
    "slo",
    lambda c, work: float(bool(_misses(c, work))),
    lambda c, w, work: _versus(c, w, "misses the SLO (" + ", ".join(_misses(c, work)) + ")"),
)


def _kv_room_short(c: Candidate, work: Workload) -> bool:
    needed = work.load_concurrency or work.needed_concurrency
    return c.capacity < needed


def _kv_room_why(c: Candidate, w: Candidate, work: Workload) -> str:
    per_instance = c.memory.max_concurrency if c.memory else 0.0
    text = (
        f"KV-bound: {per_instance:.1f} requests per instance at {work.context // 1024}k "
        f"({c.capacity:.1f} in all; {work.load_concurrency or work.needed_concurrency} wanted)"
    )
    return _versus(c, w, text)


KV_ROOM = Criterion("kv-room", lambda c, work: float(_kv_room_short(c, work)), _kv_room_why)
MOST_OUTPUT = Criterion(
    "output",
    lambda c, work: _value(c, "output_tokens_per_s", -1.0),
    lambda c, w, work: _versus(c, w, "less output" + _ratio(c, w, "output_tokens_per_s")),
    relative=True,
)
# Per GPU of the hardware asked for: GPUs a layout leaves idle produce nothing.
MOST_PER_GPU = Criterion(
    "per-gpu",
    lambda c, work: _value(c, "output_tokens_per_s", -1.0, per=work.usable_gpus),
    lambda c, w, work: _versus(
        c, w, "less output per GPU" + _ratio(c, w, "output_tokens_per_s_per_gpu")
    ),
    relative=True,
)
LOWEST_TPOT = Criterion(
    "tpot",
    lambda c, work: _value(c, "tpot_ms", 1.0),
    lambda c, w, work: _versus(c, w, "slower decode" + _ratio(c, w, "tpot_ms")),
    relative=True,
)
LOWEST_TTFT = Criterion(
    "ttft",
    lambda c, work: _value(c, "ttft_ms", 1.0),
    lambda c, w, work: _versus(c, w, "slower first token" + _ratio(c, w, "ttft_ms")),
    relative=True,
)


def _sglang_deepseek_on_hopper(work: Workload) -> bool:
    return (
        work.engine == "sglang"
        and work.model.is_moe
        and work.model.attention == "mla"
        and work.gpu.name.startswith(("H100", "H200"))
    )


# Expert practice the model cannot see: SGLang's DeepSeek V3/R1 recipe on H100/H200 nodes is
# plain TP (TP8 on one node, TP16 over two), adding DP attention and EP only for throughput
# (sgl-project/sglang benchmark/deepseek_v3/README.md).
SGLANG_PLAIN_TP = Criterion(
    "sglang-plain-tp",
    lambda c, work: _plain_tp_penalty(c, work),
    lambda c, w, work: (
        "SGLang serves DeepSeek on H100/H200 nodes as plain TP; DP attention and EP are its "
        "throughput recipe, PP is in neither (benchmark/deepseek_v3/README.md)"
    ),
)


def _plain_tp_penalty(c: Candidate, work: Workload) -> float:
    if not _sglang_deepseek_on_hopper(work):
        return 0.0
    if c.shape.pp > 1:
        return 2.0
    return float(c.shape.ep > 1 or c.shape.attn_dp > 1)


GATES = [FITS, MEETS, SOFT]


def criteria(work: Workload) -> list[Criterion]:
    """The ordered criteria of the request's goal on this engine and model.

    Engine rules with their sources come first (what the model cannot see), then the
    prediction decides; the shape breaks remaining ties.
    """
    goal = work.goal
    moe = work.model.is_moe
    if work.prefer_wide_ep and moe:
        first = DP_EP if work.engine == "vllm" else ATTN_DP
        order = [first, WIDER_EP, DOMAIN, LESS_PP, MORE_CAPACITY]
    elif goal == "latency":
        order = [VLLM_PP_ACROSS_NODES, SGLANG_PLAIN_TP, SLO_MET, LOWEST_TPOT, LOWEST_TTFT]
        # Ties (within the model's margin) go to the simplest fast layout: plain wide TP.
        order += [LESS_DP, WIDER_TP, LESS_PP, MORE_REPLICAS]
    elif goal == "throughput":
        order = [VLLM_PP_ACROSS_NODES]
        if moe and work.engine == "vllm":
            # vLLM's throughput recipe for MoE: DP attention with EP experts (docs: "Data
            # Parallel Deployment", "Expert Parallel Deployment").
            order += [DP_EP]
        elif moe and work.engine == "sglang" and work.model.attention == "mla":
            order += [ATTN_DP, EP_ON, LESS_PP]
        # Equal output (the front end caps a saturated instance) goes to the layout without
        # pipeline bubbles.
        order += [SLO_MET, MOST_PER_GPU, MOST_OUTPUT, INSTANCE_GPUS, LESS_PP]
    else:
        order = [VLLM_PP_ACROSS_NODES, SGLANG_PLAIN_TP, KV_ROOM, SLO_MET, MOST_OUTPUT]
        order += [LOWEST_TPOT, INSTANCE_GPUS]
    return GATES + order


def _bests(cands: list[Candidate], work: Workload, order: list[Criterion]) -> dict[str, float]:
    """The best value of each relative criterion over the layouts that fit."""
    fitting = [c for c in cands if c.fits] or cands
    return {
        criterion.name: min(criterion.value(c, work) for c in fitting)
        for criterion in order
        if criterion.relative and fitting
    }


def _bucket(value: float, best: float) -> float:
    return float(math.floor((value - best) / TIE_STEP + 1e-9))


def rank_key(
    candidate: Candidate,
    work: Workload,
    order: list[Criterion],
    bests: dict[str, float] | None = None,
) -> tuple[float, ...]:
    bests = bests or {}
    values = tuple(
        _bucket(criterion.value(candidate, work), bests[criterion.name])
        if criterion.relative and criterion.name in bests
        else criterion.value(candidate, work)
        for criterion in order
    )
    # The shape itself breaks remaining ties, so the result never depends on search order.
    shape = candidate.shape
    return (*values, shape.tp, shape.pp, shape.dp, shape.ep, shape.attn_dp)


def rank(cands: list[Candidate], work: Workload) -> list[Candidate]:
    order = criteria(work)
    bests = _bests(cands, work, order)
    return sorted(cands, key=lambda c: rank_key(c, work, order, bests))


def loss(
    loser: Candidate,
    winner: Candidate,
    work: Workload,
    field: list[Candidate] | None = None,
) -> tuple[str, str]:
    """(criterion name, reason): the first criterion of the goal on which `loser` is worse
    (for predictions: in a worse tie bucket of `field`, or by more than the tie margin)."""
    order = criteria(work)
    bests = _bests(field, work, order) if field else {}
    for criterion in order:
        lost, won = criterion.value(loser, work), criterion.value(winner, work)
        if criterion.relative and criterion.name in bests:
            best = bests[criterion.name]
            worse = _bucket(lost, best) > _bucket(won, best)
        elif criterion.relative:
            worse = lost - won >= TIE_STEP - 1e-9
        else:
            worse = lost > won
        if worse:
            return criterion.name, criterion.why(loser, winner, work)
    return "ties", "ranked lower on ties (same cost, larger sizes)"


def lost_because(loser: Candidate, winner: Candidate, work: Workload) -> str:
    return loss(loser, winner, work)[1]
