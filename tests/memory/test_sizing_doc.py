"""docs/sizing.md quotes the planner: recompute its key rows and find them in the text."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.hardware.gpus import find_gpu
from orchestrator.models.lookup import find_model
from orchestrator.plan import Parallelism
from orchestrator.planning.memory.estimate import estimate

DOC = Path(__file__).resolve().parents[2] / "docs" / "sizing.md"

CASES = [
    ("qwen3-32b", "H100", Parallelism(), 2048, {}, ["weights", "kv", "conc"]),
    ("qwen3-32b", "H100", Parallelism(tp=2), 2048, {}, ["weights", "kv", "conc"]),
    ("qwen3-32b", "H200", Parallelism(), 2048, {}, ["kv", "conc"]),
    ("qwen3-32b", "L40S", Parallelism(tp=4), 2048, {}, ["weights", "kv", "conc"]),
    ("qwen3-32b", "H100", Parallelism(), 2048, {"quantization": "fp8"}, ["weights", "kv"]),
    ("deepseek-r1", "H100", Parallelism(tp=8), 32768, {}, ["weights", "kv"]),
    ("deepseek-r1", "H100", Parallelism(tp=8, pp=2), 32768, {}, ["weights", "kv", "tokens"]),
    ("deepseek-r1", "H100", Parallelism(tp=16), 32768, {}, ["weights", "kv", "tokens"]),
    ("deepseek-r1", "H200", Parallelism(tp=8), 32768, {}, ["kv", "tokens"]),
    ("deepseek-r1", "B200", Parallelism(tp=8), 32768, {}, ["kv", "tokens"]),
    ("deepseek-r1", "MI300X", Parallelism(tp=8), 32768, {}, ["kv", "tokens"]),
    ("deepseek-r1", "H200", Parallelism(tp=8), 32768, {"engine": "sglang"}, ["kv", "tokens"]),
    (
        "llama-3-70b",
        "RTX-PRO-6000",
        Parallelism(tp=2),
        8192,
        {"quantization": "bf16"},
        ["weights", "tokens"],
    ),
    (
        "llama-3-70b",
        "L40S",
        Parallelism(tp=4),
        8192,
        {"quantization": "bf16"},
        ["weights", "tokens"],
    ),
    (
        "mixtral-8x22b",
        "RTX-PRO-6000",
        Parallelism(tp=4),
        32768,
        {"quantization": "bf16"},
        ["weights", "tokens"],
    ),
    (
        "mixtral-8x22b",
        "L40S",
        Parallelism(tp=8),
        32768,
        {"quantization": "bf16"},
        ["weights", "tokens"],
    ),
    (
        "deepseek-v3",
        "RTX-PRO-6000",
        Parallelism(tp=8, pp=3),
        32768,
        {"quantization": "bf16"},
        ["weights", "tokens"],
    ),
    (
        "deepseek-v3",
        "L40S",
        Parallelism(tp=8, pp=5),
        32768,
        {"quantization": "bf16"},
        ["weights", "tokens"],
    ),
    (
        "llama-3.1-405b",
        "RTX-PRO-6000",
        Parallelism(tp=8, pp=2),
        32768,
        {"quantization": "bf16"},
        ["weights", "tokens"],
    ),
    (
        "llama-3.1-405b",
        "L40S",
        Parallelism(tp=8, pp=3),
        32768,
        {"quantization": "bf16"},
        ["weights", "tokens"],
    ),
    (
        "llama-3.1-405b",
        "RTX-PRO-6000",
        Parallelism(tp=8),
        32768,
        {"quantization": "fp8"},
        ["weights", "tokens"],
    ),
]


@pytest.mark.parametrize(("model", "gpu", "par", "context", "options", "quoted"), CASES)
def test_sizing_guide_quotes_the_planner(
    model: str,
    gpu: str,
    par: Parallelism,
    context: int,
    options: dict[str, str],
    quoted: list[str],
) -> None:
    text = DOC.read_text(encoding="utf-8")
    engine = options.get("engine", "vllm")
    result = estimate(
        find_model(model),
        find_gpu(gpu),
        engine,
        par,
        context=context,
        quantization=options.get("quantization"),
    )
    figures = {
        "weights": f"{result.weights_gib_per_gpu:.2f} GiB",
        "kv": f"{result.kv_cache_gib_per_gpu:.2f} GiB",
        "tokens": f"{result.kv_cache_tokens:,}",
        "conc": f"| {result.max_concurrency:.1f} |",
    }
    for key in quoted:
        assert figures[key] in text, f"{model} on {gpu} {par.label()}: {key} {figures[key]}"
