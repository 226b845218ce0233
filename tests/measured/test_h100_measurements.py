"""The planner against figures measured on a real NVIDIA H100 80GB HBM3.

`h100-gpu-memory.json` is the output of `benchmarks/gpu_memory_probe.py` on one H100 SXM
(driver 580.159.04, PyTorch 2.11): NVML and CUDA memory totals, and for three dense catalog
models the bytes their BF16 weights took on the GPU and the KV bytes per token their attention
stored.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.hardware import gpus as catalog
from orchestrator.models import lookup
from orchestrator.plan import Parallelism
from orchestrator.planning.memory import estimate as memory

MEASURED = json.loads((Path(__file__).parent / "h100-gpu-memory.json").read_text())
GIB = 2**30


def test_catalog_memory_is_nvml_total_minus_reserved_which_cuda_reports() -> None:
    nvml = MEASURED["nvml"]
    usable = nvml["nvml_v2_total"] - nvml["nvml_v2_reserved"]
    assert usable == MEASURED["cuda"]["total"]
    gpu = catalog.gpu_from_nvml_name(nvml["name"], nvml["nvml_v1_total"])
    assert gpu is not None and gpu.name == catalog.find_gpu("H100-80GB-SXM").name
    assert gpu.memory_gib == pytest.approx(usable / GIB, abs=0.01)


@pytest.mark.parametrize("row", MEASURED["models"], ids=lambda row: row["model"])
def test_weights_and_kv_per_token_match_the_gpu(row: dict[str, int]) -> None:
    model = lookup.find_model(str(row["model"]))
    assert model.params_total == row["params_measured"]
    tp1 = Parallelism()
    weights = memory.weight_bytes_per_gpu(model, tp1, quantization=None, engine="vllm")
    assert weights == pytest.approx(row["weights_bytes_on_gpu"], rel=0.005)
    kv = memory.kv_bytes_per_token_per_gpu(model, tp1, "auto")
    assert kv == row["kv_bytes_per_token"]
