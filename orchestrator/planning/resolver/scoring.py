"""Ranking: which valid layout a goal prefers, and in words why another one lost.

A goal is an ordered list of criteria. Each criterion maps a candidate to a number (lower is
better) and knows how to say why a worse value loses. Candidates are compared criterion by
criterion, so the first criterion where a runner-up is worse is exactly its reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.planning.resolver.candidates import Candidate
from orchestrator.planning.resolver.context import Workload


@dataclass(frozen=True)
class Criterion:
    name: str
    value: Callable[[Candidate, Workload], float]
    # (loser, winner, work) -> why the loser is worse on this criterion
    why: Callable[[Candidate, Candidate, Workload], str]


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

GATES = [FITS, MEETS, SOFT]


def criteria(work: Workload) -> list[Criterion]:
    """The ordered criteria of the request's goal on this engine and model."""
    goal = work.goal
    moe = work.model.is_moe
    if work.prefer_wide_ep and moe:
        first = DP_EP if work.engine == "vllm" else ATTN_DP
        order = [first, WIDER_EP, DOMAIN, LESS_PP, MORE_CAPACITY]
    elif goal == "latency":
        order = [NODES, VLLM_PP_ACROSS_NODES, WIDER_TP, LESS_DP, LESS_PP, DOMAIN, EP_ON]
        order += [NO_ATTN_DP, MORE_REPLICAS]
    elif goal == "throughput":
        if moe and work.engine == "vllm":
            order = [DP_EP, NODES, WIDER_DP, INSTANCE_GPUS, LESS_PP, DOMAIN]
        elif moe and work.engine == "sglang" and work.model.attention == "mla":
            order = [ATTN_DP, INSTANCE_GPUS, NODES, LESS_PP, DOMAIN, EP_ON]
        else:
            order = [INSTANCE_GPUS, NODES, VLLM_PP_ACROSS_NODES, LESS_PP, DOMAIN, EP_ON]
        order += [MORE_CAPACITY, MORE_REPLICAS]
    else:
        order = [INSTANCE_GPUS, NODES, VLLM_PP_ACROSS_NODES, LESS_DP, LESS_PP, DOMAIN]
        order += [EP_ON, NO_ATTN_DP, MORE_REPLICAS, MORE_CAPACITY]
    return GATES + order


def rank_key(candidate: Candidate, work: Workload, order: list[Criterion]) -> tuple[float, ...]:
    values = tuple(criterion.value(candidate, work) for criterion in order)
    # The shape itself breaks remaining ties, so the result never depends on search order.
    shape = candidate.shape
    return (*values, shape.tp, shape.pp, shape.dp, shape.ep, shape.attn_dp)


def rank(cands: list[Candidate], work: Workload) -> list[Candidate]:
    order = criteria(work)
    return sorted(cands, key=lambda c: rank_key(c, work, order))


def loss(loser: Candidate, winner: Candidate, work: Workload) -> tuple[str, str]:
    """(criterion name, reason): the first criterion of the goal on which `loser` is worse."""
    for criterion in criteria(work):
        if criterion.value(loser, work) > criterion.value(winner, work):
            return criterion.name, criterion.why(loser, winner, work)
    return "ties", "ranked lower on ties (same cost, larger sizes)"


def lost_because(loser: Candidate, winner: Candidate, work: Workload) -> str:
    return loss(loser, winner, work)[1]
