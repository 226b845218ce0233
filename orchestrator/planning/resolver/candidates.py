"""Candidate layouts: every shape worth considering, with its validity, memory and placement.

The search covers the TP x PP x DP x EP x attention-DP sizes the engine accepts (TP and DP
over powers of two and whole-node multiples; vLLM's EP all of TP x DP or none, SGLang's EP any
divisor of TP, its attention-DP none or one group per rank as its recipes run it), replicas
filling the rest; memory is estimated once per valid
shape, so a plan costs milliseconds even for a 12-node cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.plan import MemoryEstimate, Replica
from orchestrator.planning.performance import Forecast
from orchestrator.planning.resolver.context import Shape, Workload
from orchestrator.planning.resolver.placement import place, tp_within_domains
from orchestrator.planning.resolver.predict import predict
from orchestrator.planning.resolver.rules import (
    matches_pins,
    node_span,
    search_sizes,
    soft_issues,
    validate,
)


@dataclass
class Candidate:
    """One layout, judged: why it is invalid, what it costs, where it goes."""

    shape: Shape
    errors: list[str]
    soft: list[str] = field(default_factory=list)
    memory: MemoryEstimate | None = None
    replicas: list[Replica] = field(default_factory=list)
    nnodes: int = 1
    tp_in_domain: bool = True
    forecast: Forecast | None = None

    @property
    def valid(self) -> bool:
        return not self.errors and bool(self.replicas)

    @property
    def fits(self) -> bool:
        """Weights plus one full-context request fit on every GPU of an instance."""
        return self.memory is not None and self.memory.fits

    @property
    def capacity(self) -> float:
        """Full-context requests all replicas hold at once."""
        if self.memory is None:
            return 0.0
        return self.memory.max_concurrency * len(self.replicas)

    @property
    def gpus_used(self) -> int:
        return self.shape.gpus * len(self.replicas)

    def meets(self, work: Workload) -> bool:
        return self.fits and self.capacity >= work.needed_concurrency


def shape_space(work: Workload, *, exact_gpus: int | None = None) -> list[Shape]:
    """Shapes to consider, restricted to the user's pins (and to `exact_gpus` GPUs if given)."""
    usable = work.usable_gpus
    sizes = search_sizes(work)
    moe = work.model.is_moe
    pins = work.pins
    tps = [pins["tp"]] if "tp" in pins else sizes
    pps = (
        [pins["pp"]] if "pp" in pins else sorted({1, 2, 4, 8} | set(range(2, len(work.nodes) + 1)))
    )
    # Dense models scale out with independent replicas, not engine DP (see docs/plan-json.md).
    dps = [pins["dp"]] if "dp" in pins else (sizes if moe else [1])
    shapes: list[Shape] = []
    for tp in tps:
        for pp in pps:
            for dp in dps:
                gpus = tp * pp * dp
                if gpus > usable or (exact_gpus is not None and gpus != exact_gpus):
                    continue
                # DP ranks with pipeline stages are legal but nobody runs them: DP+EP
                # deployments keep PP at 1. Only a user's pins reach that corner.
                if pp > 1 and dp > 1 and not ("pp" in pins and "dp" in pins):
                    continue
                for ep in _ep_choices(work, tp, dp):
                    for attn_dp in _attn_dp_choices(work, tp, dp):
                        shape = Shape(tp=tp, pp=pp, dp=dp, ep=ep, attn_dp=attn_dp)
                        if matches_pins(shape, pins):
                            shapes.append(shape)
    return shapes


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _ep_choices(work: Workload, tp: int, dp: int) -> list[int]:
    """vLLM's EP is all of TP x DP or nothing (--enable-expert-parallel); SGLang's
    --ep-size is any divisor of the TP size that divides the experts."""
    moe = work.model.moe
    if moe is None or not work.model.is_moe:
        return [1]
    if "ep" in work.pins:
        return [work.pins["ep"]]
    if work.engine == "vllm":
        return sorted({1, tp * dp})
    return [ep for ep in _divisors(tp) if moe.num_experts % ep == 0]


def _attn_dp_choices(work: Workload, tp: int, dp: int) -> list[int]:
    """vLLM's DP ranks each run attention on their own requests. SGLang's --dp-size with
    --enable-dp-attention may be any divisor of TP; its recipes (benchmark/deepseek_v3, the
    large-scale EP blog) use one group per rank, so the search tries none or that (a user's
    pin reaches the sizes between)."""
    if work.engine == "vllm":
        return [dp if work.model.is_moe and dp > 1 else 1]
    if "attn_dp" in work.pins:
        return [work.pins["attn_dp"]]
    if dp > 1 or not work.model.is_moe:
        return [1]
    return sorted({1, tp})


def judge(shape: Shape, work: Workload, budget: int | None = None) -> Candidate:
    """Validate, place and size one shape."""
    errors = validate(shape, work)
    span = node_span(shape, work.gpus_per_node)
    nnodes = span[0] if span else 1
    candidate = Candidate(shape=shape, errors=errors, nnodes=nnodes)
    if errors:
        return candidate
    candidate.replicas = place(shape, work.nodes, budget or work.usable_gpus)
    if not candidate.replicas:
        candidate.errors = [f"no {shape.gpus} free GPUs laid out as one instance"]
        return candidate
    candidate.soft = soft_issues(shape, work)
    candidate.tp_in_domain = tp_within_domains(candidate.replicas, work.nodes, shape.tp)
    candidate.memory = work.memory(shape)
    candidate.forecast = predict(
        shape,
        candidate.memory,
        candidate.replicas,
        work,
        nnodes=nnodes,
        tp_in_domain=candidate.tp_in_domain,
    )
    return candidate


def candidates(work: Workload) -> list[Candidate]:
    """Every shape in the space, judged; invalid ones keep their reasons."""
    return [judge(shape, work) for shape in shape_space(work)]
