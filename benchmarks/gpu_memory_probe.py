"""Measure, on a real GPU, the figures the memory planner predicts.

Run on a machine with an NVIDIA GPU, PyTorch and transformers (no weights are downloaded:
models are built from the catalog's architecture facts with random values):

    python3 benchmarks/gpu_memory_probe.py > gpu-memory.json

It records, as JSON:
- NVML's memory total (v1) and total/reserved (v2), and what CUDA reports as total, so the
  catalog's "usable memory" can be checked against both;
- the memory a fresh CUDA context takes before any tensor (the engines' "non-torch" share);
- for a few dense catalog models: the bytes their BF16 weights occupy on the GPU and their
  parameter count, to compare with `memory.weight_bytes_per_gpu` at TP1;
- the KV cache bytes per token the model's attention really stores (from a forward pass with
  a cache), to compare with `memory.kv_bytes_per_token_per_gpu` at TP1.

Only PyYAML is needed from the project's dependencies: profiles are read directly.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import yaml

MODELS = ("llama-3.1-8b", "qwen3-8b", "deepseek-r1-distill-qwen-7b")
PROFILES = Path(__file__).resolve().parent.parent / "profiles" / "models"


def nvml_memory() -> dict[str, int]:
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    v1 = pynvml.nvmlDeviceGetMemoryInfo(handle)
    out = {"nvml_v1_total": int(v1.total), "nvml_v1_used": int(v1.used)}
    try:
        v2 = pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
        out |= {"nvml_v2_total": int(v2.total), "nvml_v2_reserved": int(v2.reserved)}
    except (pynvml.NVMLError, AttributeError, TypeError) as error:
        out["nvml_v2_error"] = str(error)  # type: ignore[assignment]
    out["name"] = pynvml.nvmlDeviceGetName(handle)  # type: ignore[assignment]
    return out


def hf_config(profile: dict[str, object]) -> object:
    from transformers import AutoConfig

    family = str(profile["family"])
    model_type = "qwen3" if family.startswith("qwen3") else "qwen2" if "qwen" in family else "llama"
    return AutoConfig.for_model(
        model_type,
        hidden_size=profile["hidden_size"],
        num_hidden_layers=profile["num_layers"],
        num_attention_heads=profile["num_attention_heads"],
        num_key_value_heads=profile["num_kv_heads"],
        head_dim=profile["head_dim"],
        intermediate_size=profile["intermediate_size"],
        vocab_size=profile["vocab_size"],
        tie_word_embeddings=profile.get("tie_word_embeddings", False),
        torch_dtype="bfloat16",
    )


def measure_model(name: str) -> dict[str, object]:
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    profile = yaml.safe_load((PROFILES / f"{name}.yaml").read_text())
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(hf_config(profile), torch_dtype=torch.bfloat16)
    torch.cuda.synchronize()
    weights = torch.cuda.memory_allocated() - before
    params = sum(p.numel() for p in model.parameters())

    tokens = 512
    cache = DynamicCache()
    ids = torch.randint(0, int(profile["vocab_size"]), (1, tokens), device="cuda")
    with torch.no_grad():
        model(input_ids=ids, past_key_values=cache, use_cache=True)
    kv_bytes = 0
    for tensor in _cache_tensors(cache):
        kv_bytes += tensor.numel() * tensor.element_size()
    result = {
        "model": name,
        "params_measured": params,
        "params_catalog": profile["params_total"],
        "weights_bytes_on_gpu": weights,
        "kv_bytes_per_token": kv_bytes // tokens,
    }
    del model, cache
    gc.collect()
    torch.cuda.empty_cache()
    return result


def _cache_tensors(cache: object) -> list[object]:
    layers = getattr(cache, "layers", None)
    if layers is not None:  # transformers >= 4.56
        return [t for layer in layers for t in (layer.keys, layer.values) if t is not None]
    return [*cache.key_cache, *cache.value_cache]  # type: ignore[attr-defined]


def main() -> int:
    import torch

    report: dict[str, object] = {"nvml": nvml_memory()}
    free0, total0 = torch.cuda.mem_get_info()  # creates the CUDA context
    report["cuda"] = {"total": total0, "free_after_context": free0}
    report["torch"] = torch.__version__
    report["models"] = [measure_model(name) for name in MODELS]
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
