"""Near-fit: when no layout fits, the engine knobs a practitioner turns before buying GPUs.

Only knobs the user left at their defaults are turned, one set at a time from the mildest:

1. the memory fraction up to 0.92 (published commands raise vLLM's 0.9 that far);
2. a shorter context, when the user did not ask for one: the largest power of two from 4,096
   up that holds the requested concurrency (the default context is deploy's choice, not the
   user's);
   on vLLM, a smaller prefill token budget (`--max-num-batched-tokens` 2048, its own default
   on smaller GPUs): the activation peak (logits over the vocabulary for every batched token)
   shrinks with it, at the cost of long prompts prefilled in more steps;
3. the memory fraction up to 0.95 (the most that leaves room for NCCL and the CUDA context);
4. an FP8 KV cache, where the GPU has FP8 (both engines store FP8 KV on Ada, Hopper and
   newer, and MI300), which halves the KV bytes per token;
5. on vLLM, eager mode (`--enforce-eager`): no CUDA-graph pool, at the cost of launching every
   kernel from the CPU each step;
then the pairs, then all three. The first set with which some layout fits wins; each knob
becomes an `Adjustment` with its reason and predicted cost.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

from orchestrator.plan import Adjustment
from orchestrator.planning.resolver.context import Workload
from orchestrator.planning.resolver.select import Selection, select

MILD_FRACTION, MAX_FRACTION = 0.92, 0.95
MIN_CONTEXT = 4096
# vLLM's default budget below 70 GiB; its chunked prefill keeps long prompts working.
SMALL_BATCHED_TOKENS = 2048
FRACTION_STEP = 0.01


@dataclass(frozen=True)
class Knobs:
    fraction_cap: float | None = None
    shorter_context: bool = False
    fp8_kv: bool = False
    small_batch: bool = False
    eager: bool = False

    def count(self) -> int:
        return sum(
            (
                self.fraction_cap is not None,
                self.shorter_context,
                self.fp8_kv,
                self.small_batch,
                self.eager,
            )
        )


def _knob_sets(work: Workload, context_asked: bool) -> list[Knobs]:
    fraction = work.memory_fraction is None
    context = not context_asked and work.context > MIN_CONTEXT
    fp8 = work.kv_cache_dtype == "auto" and work.gpu.supports_fp8
    batch = _batch_knob_applies(work)
    singles = []
    if fraction:
        singles.append(Knobs(fraction_cap=MILD_FRACTION))
    if context:
        singles.append(Knobs(shorter_context=True))
    if batch:
        singles.append(Knobs(fraction_cap=MILD_FRACTION if fraction else None, small_batch=True))
    if fraction:
        singles.append(Knobs(fraction_cap=MAX_FRACTION))
    if fp8:
        singles.append(Knobs(fp8_kv=True))
    eager = work.engine == "vllm" and not work.eager_asked and not work.enforce_eager
    if eager:
        singles.append(Knobs(fraction_cap=cap_or_none(fraction), eager=True))
    cap = MAX_FRACTION if fraction else None
    pairs = [
        Knobs(fraction_cap=cap, shorter_context=True) if cap and context else None,
        Knobs(shorter_context=True, fp8_kv=True) if context and fp8 else None,
        Knobs(fraction_cap=cap, fp8_kv=True) if cap and fp8 else None,
        Knobs(fraction_cap=cap, shorter_context=context, fp8_kv=fp8),
        Knobs(fraction_cap=cap, shorter_context=context, fp8_kv=fp8, small_batch=batch),
        Knobs(
            fraction_cap=cap, shorter_context=context, fp8_kv=fp8, small_batch=batch, eager=eager
        ),
    ]
    found: list[Knobs] = []
    for knobs in [*singles, *(p for p in pairs if p is not None)]:
        if knobs.count() and knobs not in found:
            found.append(knobs)
    return found


def cap_or_none(fraction: bool) -> float | None:
    return MAX_FRACTION if fraction else None


def _batch_knob_applies(work: Workload) -> bool:
    from orchestrator.planning.memory.estimate import default_max_num_batched_tokens

    return (
        work.engine == "vllm"
        and not work.batched_tokens_asked
        and work.max_num_batched_tokens is None
        and default_max_num_batched_tokens("vllm", work.gpu) > SMALL_BATCHED_TOKENS
    )


def _variant(work: Workload, **changes: object) -> Workload:
    # A fresh memo: the memory estimates depend on the knobs.
    return replace(work, _memo={}, **changes)  # type: ignore[arg-type]


def _needed_fraction(selection: Selection, cap: float) -> float | None:
    """The smallest fraction (in steps of 0.01, at most `cap`) with which some valid layout
    fits: the KV budget grows by the GPU's memory times the fraction added."""
    needs = []
    for candidate in selection.ranked:
        memory = candidate.memory
        if not candidate.valid or memory is None:
            continue
        short = max(0.0, -memory.margin_gib_per_gpu) / memory.gpu_memory_gib
        needs.append(memory.memory_fraction + short)
    if not needs:
        return None
    need = math.ceil(min(needs) / FRACTION_STEP - 1e-6) * FRACTION_STEP
    return round(need, 2) if need <= cap + 1e-9 else None


def _contexts(work: Workload) -> Iterator[int]:
    size = 1
    while size * 2 < work.context:
        size *= 2
    while size >= MIN_CONTEXT:
        yield size
        size //= 2


@dataclass
class NearFit:
    work: Workload
    selection: Selection
    adjustments: list[Adjustment]


def _search(work: Workload, knobs: Knobs) -> tuple[Workload, Selection] | None:
    base = work
    if knobs.fp8_kv:
        base = _variant(base, kv_cache_dtype="fp8")
    if knobs.small_batch:
        base = _variant(base, max_num_batched_tokens=SMALL_BATCHED_TOKENS)
    if knobs.eager:
        base = _variant(base, enforce_eager=True)
    contexts: list[int | None] = list(_contexts(base)) if knobs.shorter_context else [None]
    # Largest context first, then the smallest fraction that makes it fit.
    for context in contexts:
        trial = _variant(base, context=context) if context is not None else base
        selection = select(trial)
        if selection.fits and trial is not work:
            return trial, selection
        if knobs.fraction_cap is None:
            continue
        fraction = _needed_fraction(selection, knobs.fraction_cap)
        if fraction is None:
            continue
        raised = _variant(trial, memory_fraction=fraction)
        selection = select(raised)
        if selection.fits:
            return raised, selection
    return None


def _at_limit(work: Workload, knobs: Knobs) -> tuple[Workload, list[str]]:
    """`work` with every knob of `knobs` turned all the way, and the knobs in words."""
    changes: dict[str, object] = {}
    parts = []
    if knobs.fraction_cap is not None:
        changes["memory_fraction"] = knobs.fraction_cap
        parts.append(f"memory fraction {knobs.fraction_cap:g}")
    if knobs.fp8_kv:
        changes["kv_cache_dtype"] = "fp8"
        parts.append("an FP8 KV cache")
    if knobs.shorter_context:
        changes["context"] = MIN_CONTEXT
        parts.append(f"context {MIN_CONTEXT}")
    if knobs.small_batch:
        changes["max_num_batched_tokens"] = SMALL_BATCHED_TOKENS
        parts.append(f"{SMALL_BATCHED_TOKENS} batched tokens")
    if knobs.eager:
        changes["enforce_eager"] = True
        parts.append("eager mode")
    return _variant(work, **changes), parts


def near_fit(work: Workload, *, context_asked: bool) -> NearFit | None:
    """The mildest knob set with which a layout fits, or None."""
    sets = _knob_sets(work, context_asked)
    # Every knob only adds room: if all of them at their limits do not fit, none will.
    if not sets or not select(_at_limit(work, max(sets, key=Knobs.count))[0]).fits:
        return None
    for knobs in sets:
        found = _search(work, knobs)
        if found is not None:
            adjusted, selection = found
            return NearFit(adjusted, selection, adjustments(work, adjusted, selection))
    return None


def _default_batched_tokens(work: Workload) -> int:
    from orchestrator.planning.memory.estimate import default_max_num_batched_tokens

    return default_max_num_batched_tokens(work.engine, work.gpu, work.engine_version)


def adjustments(before: Workload, after: Workload, selection: Selection) -> list[Adjustment]:
    """One `Adjustment` per knob that differs, with its reason and predicted cost."""
    chosen = selection.chosen
    memory = chosen.memory
    assert memory is not None
    forecast = chosen.forecast
    predicted = (
        f"; predicted TPOT {forecast.tpot_ms:.1f} ms, {forecast.output_tokens_per_s:,.0f} "
        f"output tok/s, up to {forecast.max_concurrency} requests running"
        if forecast
        else ""
    )
    layout = f"{chosen.shape.label()} x {len(chosen.replicas)}"
    found: list[Adjustment] = []
    if after.context != before.context:
        found.append(
            Adjustment(
                knob="context",
                value=str(after.context),
                default=str(before.context),
                reason=(
                    f"{layout} cannot hold {before.needed_concurrency} request(s) of "
                    f"{before.context} tokens; {after.context} is the largest power of two that "
                    f"holds them ({memory.max_concurrency:.1f} at once); cost: longer prompts "
                    f"are refused (pass --context to keep it){predicted}"
                ),
            )
        )
    if after.memory_fraction is not None and before.memory_fraction is None:
        found.append(
            Adjustment(
                knob="memory_fraction",
                value=f"{after.memory_fraction:g}",
                default=f"{before.default_fraction(chosen.shape):g}",
                reason=(
                    f"the smallest fraction with which {layout} fits "
                    f"({memory.kv_cache_gib_per_gpu:.2f} GiB of KV per GPU); cost: "
                    f"{(1 - after.memory_fraction) * memory.gpu_memory_gib:.1f} GiB per GPU left "
                    f"outside the engine's pool for NCCL, the CUDA context and spikes{predicted}"
                ),
            )
        )
    if after.max_num_batched_tokens != before.max_num_batched_tokens:
        found.append(
            Adjustment(
                knob="max_num_batched_tokens",
                value=str(after.max_num_batched_tokens),
                default=str(_default_batched_tokens(before)),
                reason=(
                    f"a {after.max_num_batched_tokens}-token step budget lowers the activation "
                    f"peak ({memory.overhead_gib_per_gpu:.2f} GiB per GPU outside weights and "
                    f"KV) so {layout} fits; cost: a prompt of {after.lengths[0]} tokens is "
                    f"prefilled in {-(-after.lengths[0] // (after.max_num_batched_tokens or 1))} "
                    f"step(s){predicted}"
                ),
            )
        )
    if after.enforce_eager and not before.enforce_eager:
        found.append(
            Adjustment(
                knob="enforce_eager",
                value="true",
                default="false",
                reason=(
                    f"no CUDA-graph pool, so {layout} fits; cost: every kernel is launched from "
                    f"the CPU each step (slower decode){predicted}"
                ),
            )
        )
    if after.kv_cache_dtype != before.kv_cache_dtype:
        found.append(
            Adjustment(
                knob="kv_cache_dtype",
                value=after.kv_cache_dtype,
                default=before.kv_cache_dtype,
                reason=(
                    f"an FP8 KV cache halves the bytes per token on {after.gpu.name} so {layout} "
                    f"fits; cost: a small accuracy loss on long contexts (per-tensor scales)"
                    f"{predicted}"
                ),
            )
        )
    return found


def closest_knobs(work: Workload, *, context_asked: bool) -> str | None:
    """When no knob set fits: what every knob at its limit still lacks, in one phrase."""
    sets = _knob_sets(work, context_asked)
    if not sets:
        return None
    widest = max(sets, key=Knobs.count)
    limit, parts = _at_limit(work, widest)
    selection = select(limit)
    memory = selection.chosen.memory
    if memory is None:
        return None
    return (
        f"even with {', '.join(parts)} the closest layout ({selection.chosen.shape.label()}) "
        f"is short {max(0.0, -memory.margin_gib_per_gpu):.1f} GiB per GPU"
    )


WEIGHT_BITS = {"fp32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "mxfp4": 4, "int4": 4}


def quantized_sibling(work: Workload) -> str | None:
    """A catalog checkpoint of the same architecture in fewer bits per weight, if one exists."""
    from orchestrator.models.catalog import load_models

    model = work.model
    bits = WEIGHT_BITS.get(model.checkpoint.format, 16)
    siblings = [
        other
        for other in load_models().values()
        if other.name != model.name
        and other.architecture == model.architecture
        and (other.num_layers, other.hidden_size, other.vocab_size)
        == (model.num_layers, model.hidden_size, model.vocab_size)
        and WEIGHT_BITS.get(other.checkpoint.format, 16) < bits
    ]
    if not siblings:
        return None
    best = min(siblings, key=lambda m: (WEIGHT_BITS.get(m.checkpoint.format, 16), m.name))
    return f"or serve the {best.checkpoint.format} checkpoint {best.name} ({best.hf_id})"
