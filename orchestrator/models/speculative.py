"""MTP layers are loaded only for speculative decoding: size them in when the request asks.

A checkpoint's MTP / next-n layers (DeepSeek, GLM-4.5+, Qwen3-Next, MiMo) are a draft model
the engines load only with speculative decoding (vLLM `--speculative-config` with an MTP
method, SGLang `--speculative-algorithm EAGLE/NEXTN`). Without it the plan leaves them out;
with it they add their weights and, being decoder layers, one more layer of KV each.
"""

from __future__ import annotations

from orchestrator.models.quantization import bytes_per_weight
from orchestrator.schema import ModelProfile

# Engine flags that turn speculative decoding on (vLLM; SGLang).
SPECULATIVE_FLAGS = ("--speculative-config", "-sc", "--spec-method", "--speculative-algorithm")


def asks_for_speculation(engine_args: list[str]) -> bool:
    return any(arg.split("=", 1)[0] in SPECULATIVE_FLAGS for arg in engine_args)


def with_mtp_loaded(model: ModelProfile) -> ModelProfile:
    """The profile as the engine loads it with the MTP layers as a draft."""
    if not model.mtp_params:
        return model
    layers = model.mtp_layers or 1
    inactive = 0
    if model.moe is not None:
        moe = model.moe
        per_expert = 3 * model.hidden_size * moe.moe_intermediate_size
        inactive = layers * (moe.num_experts - moe.experts_per_token) * per_expert
    checkpoint = model.checkpoint
    if checkpoint.bytes is not None:
        extra = int(model.mtp_params * bytes_per_weight(checkpoint.format, checkpoint))
        checkpoint = checkpoint.model_copy(update={"bytes": checkpoint.bytes + extra})
    return model.model_copy(
        update={
            "num_layers": model.num_layers + layers,
            "params_total": model.params_total + model.mtp_params,
            "params_active": model.params_active + model.mtp_params - inactive,
            "checkpoint": checkpoint,
        }
    )
