"""Validity rules: what a layout must satisfy for the model to shard and the engine to start.

`validate` returns every broken hard rule as one readable line (empty list: valid). Hard rules
come from the model's arithmetic (heads, FP8 blocks, experts) and from the engines' own
argument checks (engines.md §1). `soft_issues` lists performance policies (TP or all-to-all
over a slow network) that rank a layout down but do not forbid it. `check_pins` turns a
user's pin that can never work into a one-line `PlanError` naming the sizes that do.
"""

from __future__ import annotations

from orchestrator.errors import PlanError
from orchestrator.planning.resolver.context import PIN_FLAGS, Shape, Workload


def search_sizes(work: Workload) -> list[int]:
    """TP/DP sizes the search tries: powers of two and whole-node multiples, up to the GPUs."""
    usable = work.usable_gpus
    sizes = set()
    size = 1
    while size <= usable:
        sizes.add(size)
        size *= 2
    gpn = work.gpus_per_node
    sizes |= {gpn * count for count in range(1, len(work.nodes) + 1) if gpn * count <= usable}
    return sorted(sizes)


def node_span(shape: Shape, gpus_per_node: int) -> tuple[int, int] | None:
    """(nodes, GPUs per node) one instance occupies, or None when it cannot fill whole nodes."""
    gpus = shape.gpus
    if gpus <= gpus_per_node:
        return 1, gpus
    if gpus % gpus_per_node:
        return None
    return gpus // gpus_per_node, gpus_per_node


def attention_tp(shape: Shape, work: Workload) -> int:
    """Ranks that split each attention layer's heads.

    SGLang's attention-DP carves the TP group into `attn_dp` groups, each running attention
    on `tp / attn_dp` ranks; vLLM's DP ranks each run attention with the full TP.
    """
    if work.engine == "sglang" and shape.attn_dp > 1:
        return max(1, shape.tp // shape.attn_dp)
    return shape.tp


def _dense_tp(shape: Shape, work: Workload) -> int:
    # With SGLang attention-DP over the whole TP group the dense MLP layers run unsharded
    # (--moe-dense-tp-size 1, as its DeepSeek recipes do).
    if work.engine == "sglang" and shape.attn_dp == shape.tp and shape.attn_dp > 1:
        return 1
    return shape.tp


def _expert_tp(shape: Shape, work: Workload) -> int:
    """How many ranks slice each expert's weights (1 when EP keeps experts whole)."""
    if shape.ep <= 1:
        return shape.tp
    if work.engine == "vllm":
        return 1  # vLLM: EP = TP x DP, every expert lives whole on one rank
    return max(1, shape.tp // shape.ep)


def fp8_block(work: Workload) -> int | None:
    """The weight block size when the served weights are block-scaled FP8."""
    checkpoint = work.model.checkpoint
    if checkpoint.format != "fp8" or checkpoint.block_size is None:
        return None
    if work.quantization not in (None, "fp8"):
        return None
    return checkpoint.block_size[0]


def tp_errors(tp: int, work: Workload, *, heads_tp: int | None = None) -> list[str]:
    """Rules on the tensor-parallel size alone (heads, KV heads, model cap)."""
    model = work.model
    errors: list[str] = []
    split = tp if heads_tp is None else heads_tp
    if model.num_attention_heads % split:
        errors.append(
            f"TP {split} does not divide the {model.num_attention_heads} attention heads "
            f"of {model.name}"
        )
    elif model.attention != "mla":
        kv = model.num_kv_heads
        if kv % split and split % kv:
            errors.append(
                f"TP {split} neither divides nor is a multiple of the {kv} KV heads of {model.name}"
            )
    if model.max_tp is not None and split > model.max_tp:
        errors.append(f"TP {split} is above {model.name}'s limit of TP {model.max_tp}")
    return errors


def validate(shape: Shape, work: Workload) -> list[str]:
    """Every hard rule `shape` breaks on this model, engine and cluster (empty: valid)."""
    model = work.model
    errors: list[str] = []
    gpn = work.gpus_per_node
    span = node_span(shape, gpn)
    if shape.gpus > work.usable_gpus:
        errors.append(f"needs {shape.gpus} GPUs; {work.usable_gpus} are available")
    if span is None:
        errors.append(f"{shape.gpus} GPUs per instance do not fill whole nodes of {gpn} GPUs")
    nnodes, per_node = span if span is not None else (1, shape.gpus)

    errors += tp_errors(shape.tp, work, heads_tp=attention_tp(shape, work))
    if shape.pp > model.num_layers:
        errors.append(f"PP {shape.pp} exceeds the {model.num_layers} layers of {model.name}")
    if shape.tp > per_node and shape.tp % per_node:
        errors.append(f"a TP group of {shape.tp} cannot be laid over nodes of {per_node} GPUs")
    if shape.tp <= per_node and per_node % shape.tp:
        errors.append(f"TP {shape.tp} does not divide the {per_node} GPUs used per node")

    errors += _moe_errors(shape, work)
    errors += _fp8_errors(shape, work)
    if work.engine == "sglang":
        errors += _sglang_errors(shape, work, nnodes)
    else:
        errors += _vllm_errors(shape, work, nnodes, per_node)
    return errors


def _moe_errors(shape: Shape, work: Workload) -> list[str]:
    model = work.model
    if model.moe is None:
        errors = []
        if shape.ep > 1:
            errors.append(f"EP needs a mixture-of-experts model; {model.name} is dense")
        return errors
    errors = []
    experts = model.moe.num_experts
    if experts % shape.ep:
        errors.append(f"EP {shape.ep} does not divide the {experts} experts of {model.name}")
    if shape.ep > 1 and work.engine == "vllm" and shape.ep != shape.tp * shape.dp:
        errors.append(
            f"vLLM sets EP = TP x DP ({shape.tp * shape.dp}) with --enable-expert-parallel, "
            f"not {shape.ep}"
        )
    if shape.ep > 1 and work.engine == "sglang" and shape.tp % shape.ep:
        errors.append(f"SGLang needs EP {shape.ep} to divide TP {shape.tp}")
    return errors


def _fp8_errors(shape: Shape, work: Workload) -> list[str]:
    block = fp8_block(work)
    if block is None:
        return []
    model = work.model
    errors = []
    has_dense_mlp = (
        model.moe is None or model.moe.first_dense_layers > 0 or model.moe.moe_layer_step > 1
    )
    dense_tp = _dense_tp(shape, work)
    if has_dense_mlp and (model.intermediate_size // dense_tp) % block:
        errors.append(
            f"FP8 {block}-blocks: intermediate_size {model.intermediate_size} / TP {dense_tp} "
            f"is not a multiple of {block}"
        )
    if model.moe is not None:
        expert_tp = _expert_tp(shape, work)
        size = model.moe.moe_intermediate_size
        if size % expert_tp or (size // expert_tp) % block:
            errors.append(
                f"FP8 {block}-blocks: moe_intermediate_size {size} / TP {expert_tp} is not a "
                f"multiple of {block}; use EP for the experts"
            )
    return errors


def _sglang_errors(shape: Shape, work: Workload, nnodes: int) -> list[str]:
    errors = []
    if (shape.tp * shape.pp) % nnodes:
        errors.append(f"SGLang needs (TP x PP) divisible by the {nnodes} nodes")
    if shape.tp % shape.attn_dp:
        errors.append(f"SGLang needs attention-DP {shape.attn_dp} to divide TP {shape.tp}")
    if shape.dp > 1 and shape.attn_dp > 1:
        errors.append("SGLang rejects --dp-size together with --attn-dp-size")
    if shape.dp > 1 and nnodes > 1:
        errors.append("SGLang rejects multi-node --dp-size replicas; use attention-DP across nodes")
    return errors


def _vllm_errors(shape: Shape, work: Workload, nnodes: int, per_node: int) -> list[str]:
    errors = []
    # vLLM has no attention-DP flag: on MoE models every DP rank runs its own attention
    # (DP attention with EP MoE), so attention-DP equals DP there and is 1 elsewhere.
    expected_attn_dp = shape.dp if work.model.is_moe and shape.dp > 1 else 1
    if shape.attn_dp != expected_attn_dp:
        errors.append(
            f"vLLM has no separate attention-DP: it equals --data-parallel-size on MoE models "
            f"({expected_attn_dp} here, not {shape.attn_dp})"
        )
    if shape.dp > 1 and nnodes > 1:
        rank_gpus = shape.tp * shape.pp
        if rank_gpus > per_node or per_node % rank_gpus:
            errors.append("vLLM data parallel needs each DP rank (TP x PP) inside one node")
        else:
            dp_local = per_node // rank_gpus
            if shape.dp % dp_local or nnodes % (shape.dp // dp_local):
                errors.append(
                    f"vLLM needs the {nnodes} nodes divisible by DP / DP-local "
                    f"({shape.dp} / {dp_local})"
                )
    return errors


def soft_issues(shape: Shape, work: Workload) -> list[str]:
    """Performance policies `shape` goes against (slow but working): rank it down."""
    issues: list[str] = []
    span = node_span(shape, work.gpus_per_node)
    if span is None or span[0] == 1:
        return issues
    nodes, per_node = span
    fabric = work.cluster.fabric
    if work.engine == "vllm" and work.model.is_moe and shape.dp > 1 and shape.ep <= 1:
        # Without EP, vLLM shards every expert over all TP x DP ranks, so each MoE layer's
        # reduction crosses the inter-node fabric; every vLLM multi-node MoE recipe enables EP
        # (docs "Expert Parallel Deployment", recipes DeepSeek-V3/R1 and Kimi-K2).
        issues.append(
            f"DP{shape.dp} spans {span[0]} nodes without EP: vLLM would slice every expert "
            "over the nodes (its multi-node MoE recipes use --enable-expert-parallel)"
        )
    # Inside one multi-node NVLink domain (an NVL72 rack) TP and EP never touch the network.
    in_nvlink_domain = work.cluster.nodes_per_nvlink_domain >= nodes > 1
    if not work.cluster.has_rdma and not in_nvlink_domain:
        if shape.tp > per_node:
            issues.append(
                f"TP{shape.tp} spans nodes: needs InfiniBand/RoCE between nodes; "
                f"cluster says {fabric}"
            )
        if shape.ep > per_node:
            issues.append(
                f"EP{shape.ep} all-to-all spans nodes: needs InfiniBand/RoCE; cluster says {fabric}"
            )
    return issues


def _valid_sizes(work: Workload, name: str, limit: int) -> list[int]:
    sizes = []
    for size in range(1, limit + 1):
        if (name == "tp" and not tp_errors(size, work)) or (
            name == "ep" and work.model.moe and work.model.moe.num_experts % size == 0
        ):
            sizes.append(size)
    return sizes


def _sizes_text(sizes: list[int]) -> str:
    return ", ".join(str(size) for size in sizes) if sizes else "none"


def check_pins(work: Workload) -> None:
    """Reject a pinned size that no layout can use, naming the sizes that work."""
    pins = work.pins
    usable = work.usable_gpus
    model = work.model
    for name, value in pins.items():
        if value < 1:
            raise PlanError(f"{PIN_FLAGS[name]} {value} is not a size", "use 1 or more")
    if "tp" in pins:
        tp = pins["tp"]
        problems = tp_errors(tp, work) if work.engine == "vllm" or "attn_dp" not in pins else []
        if problems:
            valid = _valid_sizes(work, "tp", usable)
            raise PlanError(f"{problems[0]}; valid: {_sizes_text(valid)}")
    if "ep" in pins and pins["ep"] > 1:
        if model.moe is None:
            raise PlanError(
                f"EP needs a mixture-of-experts model; {model.name} is dense", "drop --ep"
            )
        if model.moe.num_experts % pins["ep"]:
            valid = _valid_sizes(work, "ep", usable)
            raise PlanError(
                f"EP {pins['ep']} does not divide the {model.moe.num_experts} experts of "
                f"{model.name}; valid: {_sizes_text(valid)}"
            )
    if pins.get("pp", 1) > model.num_layers:
        raise PlanError(
            f"PP {pins['pp']} exceeds the {model.num_layers} layers of {model.name}",
            f"use --pp {model.num_layers} or less",
        )
    if (
        work.engine == "vllm"
        and pins.get("attn_dp", 1) > 1
        and (not model.is_moe or pins.get("dp", pins["attn_dp"]) != pins["attn_dp"])
    ):
        raise PlanError(
            "vLLM has no separate attention-DP (it is --dp on MoE models)",
            "use --dp, or --engine sglang for --attn-dp",
        )
    attn_dp = pins.get("attn_dp", 1)
    if work.engine == "sglang" and attn_dp > 1:
        tps = [pins["tp"]] if "tp" in pins else search_sizes(work)
        if not any(tp % attn_dp == 0 and not tp_errors(tp // attn_dp, work) for tp in tps):
            valid = [
                size
                for size in search_sizes(work)
                if any(tp % size == 0 and not tp_errors(tp // size, work) for tp in tps)
            ]
            raise PlanError(
                f"attention-DP {attn_dp} must divide TP"
                + (f" {pins['tp']}" if "tp" in pins else f" (at most {usable} GPUs)")
                + f"; valid: {_sizes_text(valid)}"
            )
    used = 1
    for name in ("tp", "pp", "dp"):
        used *= pins.get(name, 1)
    if used > usable:
        sizes = " x ".join(f"{PIN_FLAGS[n]} {pins[n]}" for n in ("tp", "pp", "dp") if n in pins)
        raise PlanError(
            f"{sizes} needs {used} GPUs; {usable} are available",
            "lower the pins or add --nodes/--gpus",
        )


def matches_pins(shape: Shape, pins: dict[str, int]) -> bool:
    return all(getattr(shape, name) == value for name, value in pins.items())
