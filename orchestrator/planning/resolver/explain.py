"""Words for decisions: one `Reason` per decision, alternatives, and warnings.

Everything here reads a chosen `Candidate` and the ranked field it won against; nothing here
changes a decision.
"""

from __future__ import annotations

from orchestrator.plan import Alternative, Reason, Replica
from orchestrator.planning.resolver.candidates import Candidate
from orchestrator.planning.resolver.context import Workload
from orchestrator.planning.resolver.predict import as_prediction, short, traffic_of
from orchestrator.planning.resolver.scoring import loss

MAX_ALTERNATIVES = 4


def gpu_ranges(gpus: list[int]) -> str:
    """[0, 1, 2, 3, 6] -> '0-3,6'."""
    parts: list[str] = []
    start = prev = None
    for index in gpus:
        if start is None:
            start = prev = index
        elif prev is not None and index == prev + 1:
            prev = index
        else:
            parts.append(f"{start}-{prev}" if start != prev else f"{start}")
            start = prev = index
    if start is not None:
        parts.append(f"{start}-{prev}" if start != prev else f"{start}")
    return ",".join(parts)


def placement_text(replicas: list[Replica]) -> str:
    pieces = []
    for replica in replicas:
        where = " + ".join(f"{s.node}[{gpu_ranges(s.gpus)}]" for s in replica.slices)
        pieces.append(where)
    return "; ".join(pieces)


def fit_reason(chosen: Candidate, field: list[Candidate], work: Workload, fits: bool) -> Reason:
    memory = chosen.memory
    assert memory is not None
    need = f"{work.needed_concurrency} requests" if work.concurrency else "one full-context request"
    load = (
        f"{memory.weights_gib_per_gpu:.1f} GiB of weights per GPU plus KV for {need} of "
        f"{work.context} tokens ({memory.kv_gib_per_request:.2f} GiB each) on {work.gpu.name}"
    )
    choice = f"{chosen.shape.gpus} GPU(s) per instance"
    if not fits:
        if memory.fits:
            why = f"{load}: all {work.usable_gpus} GPUs hold {chosen.capacity:.1f} requests"
        else:
            why = f"{load}: short by {-memory.margin_gib_per_gpu:.1f} GiB per GPU on the closest layout"
        return Reason(decision="fit", choice="does not fit", why=why)
    fitting = [c.shape.gpus for c in field if c.valid and c.fits]
    smallest = min(fitting) if fitting else chosen.shape.gpus
    why = f"{load}: the smallest instance that fits has {smallest} GPU(s)"
    return Reason(decision="fit", choice=choice, why=why)


def _tp_reason(chosen: Candidate, work: Workload, fits: bool) -> Reason:
    shape = chosen.shape
    per_node = shape.gpus // chosen.nnodes
    if not fits:
        why = "the layout that comes closest on these GPUs; it still does not fit"
    elif shape.tp == 1:
        why = "the model fits one GPU per rank: no all-reduce on the token path"
        if shape.dp > 1 and shape.ep > 1:
            why = (
                f"attention runs data-parallel on {shape.dp} ranks and EP{shape.ep} spreads "
                f"the experts, so no rank needs a TP all-reduce"
            )
    elif shape.tp > per_node:
        why = (
            f"TP across {chosen.nnodes} nodes over {work.cluster.fabric} "
            f"(SGLang's documented multi-node path)"
        )
    elif work.goal == "latency":
        why = "latency goal: the widest TP inside the NVLink domain splits each token's work"
    else:
        why = f"TP{shape.tp} is the smallest tensor-parallel size that holds the weights and KV"
    if shape.tp > 1 and shape.tp <= per_node:
        if chosen.tp_in_domain:
            why += "; the TP group stays inside one NVLink domain"
        else:
            why += "; the TP group crosses PCIe (no NVLink between these GPUs)"
    return Reason(decision="tensor parallel", choice=f"TP{shape.tp}", why=why)


def _pp_reason(chosen: Candidate, work: Workload) -> Reason:
    pp = chosen.shape.pp
    if pp == 1:
        why = "no pipeline stages: every rank holds all layers of its TP shard"
    elif chosen.nnodes > 1 and pp == chosen.nnodes:
        why = (
            f"one stage per node: TP stays on NVLink inside a node, only activations cross "
            f"{work.cluster.fabric} between nodes"
        )
    else:
        why = f"PP{pp} splits the {work.model.num_layers} layers where wider TP is not valid or slower"
    return Reason(decision="pipeline parallel", choice=f"PP{pp}", why=why)


def _dp_reason(chosen: Candidate, work: Workload) -> Reason:
    shape = chosen.shape
    count = len(chosen.replicas)
    unit = f"{count} instance(s)" if shape.dp == 1 else f"DP{shape.dp} x {count} instance(s)"
    if shape.dp > 1:
        why = (
            f"one engine with {shape.dp} data-parallel ranks ({work.engine} "
            f"--data-parallel-size{'/--dp-size' if work.engine == 'sglang' else ''}); "
        )
    else:
        why = ""
    spare = work.usable_gpus - chosen.gpus_used
    if count > 1:
        why += (
            f"{count} independent engine instances behind a load balancer use "
            f"{chosen.gpus_used} of {work.usable_gpus} GPUs"
        )
        if work.goal != "throughput":
            why += " (spare GPUs serve more requests at no cost to per-request latency)"
    else:
        why += "one instance"
        why += f"; {spare} GPU(s) left unused" if spare else " uses every GPU"
    return Reason(decision="data parallel / replicas", choice=unit, why=why)


def _ep_reason(chosen: Candidate, work: Workload) -> Reason:
    model = work.model
    shape = chosen.shape
    if model.moe is None:
        return Reason(decision="expert parallel", choice="none", why="dense model: no experts")
    if shape.ep == 1:
        why = "experts are sliced by TP" if shape.gpus > 1 else "one GPU holds every expert"
        return Reason(decision="expert parallel", choice="EP1", why=why)
    flag = (
        "vLLM --enable-expert-parallel, EP = TP x DP"
        if work.engine == "vllm"
        else "SGLang --ep-size"
    )
    why = (
        f"{model.moe.num_experts} experts placed whole, {model.moe.num_experts // shape.ep} per "
        f"rank ({flag}), instead of slicing each expert"
    )
    return Reason(decision="expert parallel", choice=f"EP{shape.ep}", why=why)


def _attn_dp_reason(chosen: Candidate, work: Workload) -> Reason:
    shape = chosen.shape
    if shape.attn_dp == 1:
        why = "attention is tensor-parallel"
        if work.model.attention == "mla" and work.engine == "sglang":
            why += "; attention-DP would multiply MLA KV capacity at some latency cost"
        return Reason(decision="attention data parallel", choice="none", why=why)
    why = f"{shape.attn_dp} attention groups each keep their own KV cache" + (
        ": the MLA latent is not sharded by TP, so attention-DP multiplies KV capacity"
        if work.model.attention == "mla"
        else ""
    )
    if work.engine == "vllm":
        why += " (vLLM: DP ranks with EP MoE)"
    else:
        why += " (SGLang --attn-dp-size)"
    return Reason(
        decision="attention data parallel", choice=f"attention-DP{shape.attn_dp}", why=why
    )


def _placement_reason(chosen: Candidate) -> Reason:
    why = "consecutive GPUs per instance"
    if chosen.nnodes > 1:
        why = "whole consecutive nodes per instance"
    elif chosen.shape.tp > 1:
        why += (
            ", each TP group inside one NVLink domain"
            if chosen.tp_in_domain
            else ", no NVLink domain is large enough for the TP group"
        )
    return Reason(decision="placement", choice=placement_text(chosen.replicas), why=why)


def decision_reasons(chosen: Candidate, work: Workload, *, fits: bool = True) -> list[Reason]:
    """TP, PP, DP/replicas, EP, attention-DP and placement of one role."""
    return [
        _tp_reason(chosen, work, fits),
        _pp_reason(chosen, work),
        _dp_reason(chosen, work),
        _ep_reason(chosen, work),
        _attn_dp_reason(chosen, work),
        _placement_reason(chosen),
    ]


def alternatives(chosen: Candidate, ranked: list[Candidate], work: Workload) -> list[Alternative]:
    """The best few other layouts, each with the reason it lost.

    One per losing reason and per (TP, PP, DP) structure, so the list shows different
    trade-offs (a layout that does not fit, one that needs InfiniBand, one with PP bubbles)
    instead of near-copies of the winner.
    """
    picked: list[tuple[Candidate, str]] = []
    reasons: set[str] = set()
    structures = {(chosen.shape.tp, chosen.shape.pp, chosen.shape.dp)}
    for candidate in ranked:
        if len(picked) >= MAX_ALTERNATIVES:
            break
        structure = (candidate.shape.tp, candidate.shape.pp, candidate.shape.dp)
        if candidate is chosen or structure in structures or not candidate.valid:
            continue
        kind, why = loss(candidate, chosen, work, ranked)
        if kind in reasons:
            continue
        reasons.add(kind)
        structures.add(structure)
        picked.append((candidate, why))
    return [
        Alternative(
            summary=(
                f"{c.shape.label()} x {len(c.replicas)} "
                f"({c.gpus_used} GPU{'s' if c.gpus_used > 1 else ''})"
            ),
            lost_because=why,
            prediction=as_prediction(c.forecast) if c.forecast else None,
        )
        for c, why in picked
    ]


def _load_text(work: Workload) -> str:
    traffic = traffic_of(work)
    lengths = f"{traffic.isl} in / {traffic.osl} out tokens"
    if traffic.request_rate is not None:
        return f"{lengths} at {traffic.request_rate:g} requests/s"
    if traffic.concurrency is not None:
        return f"{lengths} at concurrency {traffic.concurrency}"
    return f"{lengths} with as many requests as the deployment runs"


def performance_reason(chosen: Candidate, work: Workload) -> Reason:
    """The prediction for the chosen layout, the goal it was ranked by, and the SLO."""
    result = chosen.forecast
    if result is None:
        return Reason(decision="performance", choice="not predicted", why="no memory estimate")
    ranked_by = {
        "latency": "lowest TPOT, then TTFT",
        "throughput": "most output tokens/s per GPU",
        "balanced": "most output tokens/s",
    }[work.goal]
    ttft, tpot = work.slo
    slo = ", ".join(
        part
        for part in (
            f"TTFT <= {ttft:.0f} ms" if ttft is not None else "",
            f"TPOT <= {tpot:.0f} ms" if tpot is not None else "",
        )
        if part
    )
    why = f"predicted for {_load_text(work)}; {work.goal} goal: {ranked_by}"
    if slo:
        why += f" within the SLO ({slo})"
    why += f"; bound by {result.bound}, up to {result.max_concurrency} requests running"
    return Reason(decision="performance", choice=short(result), why=why)


def warnings_for(chosen: Candidate, work: Workload, role: str = "serve") -> list[str]:
    """What a platform engineer should know before starting this role."""
    notes = list(chosen.soft)
    prefix = "" if role == "serve" else f"{role}: "
    shape = chosen.shape
    if shape.tp > 1 and not chosen.tp_in_domain and chosen.nnodes == 1:
        node = chosen.replicas[0].slices[0].node if chosen.replicas else "the node"
        notes.append(
            f"TP{shape.tp} runs over PCIe on {node} (no NVLink between these GPUs): "
            f"decoding is slower; PP or fewer GPUs per instance avoid it"
        )
    memory = chosen.memory
    if memory is not None and memory.fits and memory.max_concurrency < 2:
        notes.append(
            f"an instance holds only {memory.max_concurrency:.1f} requests of {work.context} "
            f"tokens: lower --context or add GPUs for concurrency"
        )
    checkpoint = work.model.checkpoint.format
    if checkpoint == "fp8" and work.quantization in (None, "fp8") and not work.gpu.supports_fp8:
        notes.append(
            f"{work.gpu.name} has no FP8 tensor cores: FP8 weights run weight-only (slower)"
        )
    if checkpoint == "mxfp4" and not work.gpu.supports_mxfp4:
        notes.append(f"{work.gpu.name} has no native MXFP4 kernels: expect slower MoE layers")
    return [prefix + note for note in notes]
