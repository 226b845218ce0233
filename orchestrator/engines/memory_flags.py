"""How each engine spells the memory settings the resolver chose (context length, memory
fraction, KV dtype, online quantization): one builder, a spelling per engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.engines.common import Argv, Placement


@dataclass(frozen=True)
class MemorySpelling:
    """How one engine spells the memory settings the resolver chose."""

    context_flag: str
    fraction_flag: str
    fraction_why: str
    fp8_kv_value: str
    # deploy's weight format -> the engine's `--quantization` method (online quantization)
    quantization: Mapping[str, str]


def add_memory_flags(place: Placement, argv: Argv, spelling: MemorySpelling) -> None:
    """Context length, memory fraction, KV dtype and online quantization, as the plan sized them."""
    plan = place.plan
    argv.flag(
        spelling.context_flag,
        plan.request.context,
        origin="resolver",
        why="context per request the KV cache was sized for",
    )
    memory = place.role.memory or plan.memory
    argv.flag(
        spelling.fraction_flag,
        f"{memory.memory_fraction:g}",
        origin="resolver",
        why=spelling.fraction_why,
    )
    if plan.request.kv_cache_dtype == "fp8":
        chosen = any(item.knob == "kv_cache_dtype" for item in plan.adjustments)
        argv.flag(
            "--kv-cache-dtype",
            spelling.fp8_kv_value,
            origin="resolver" if chosen else "user",
            why="FP8 KV cache so the layout fits" if chosen else "--kv-cache-dtype fp8",
        )
    for item in plan.adjustments:
        if item.knob == "enforce_eager":
            flag = "--enforce-eager" if plan.engine.name == "vllm" else "--disable-cuda-graph"
            argv.flag(flag, origin="resolver", why="no CUDA-graph pool so the layout fits")
        if item.knob == "max_num_batched_tokens":
            flag = (
                "--max-num-batched-tokens"
                if plan.engine.name == "vllm"
                else "--chunked-prefill-size"
            )
            argv.flag(
                flag,
                item.value,
                origin="resolver",
                why="smaller activation peak so the layout fits",
            )
    quant = plan.request.quantization
    if not quant or quant == plan.model.checkpoint_format:
        return
    # bf16 is a dtype, not a quantization method.
    if quant == "bf16":
        argv.flag("--dtype", "bfloat16", origin="user", why="--quantization bf16")
    elif quant in spelling.quantization:
        argv.flag(
            "--quantization",
            spelling.quantization[quant],
            origin="user",
            why=f"--quantization {quant} (online)",
        )
