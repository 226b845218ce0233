"""Architectures per engine version: the generator on fake wheels, and the shipped lists."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from orchestrator.errors import PlanError
from orchestrator.models.catalog import load_models
from orchestrator.models.engine_support import architectures, check_loadable, versions_with_lists
from orchestrator.plan import Plan
from orchestrator.planning.build import build_plan
from orchestrator.planning.request import PlanRequest

REPO_ROOT = Path(__file__).resolve().parents[2]
GENERATOR = REPO_ROOT / "scripts" / "gen_model_architectures.py"

VLLM_REGISTRY = """
_TEXT_GENERATION_MODELS = {
    "LlamaForCausalLM": ("llama", "LlamaForCausalLM"),
    "Qwen3NextForCausalLM": ("qwen3_next", "Qwen3NextForCausalLM"),
}
_EMBEDDING_MODELS = {"BertModel": ("bert", "BertEmbeddingModel")}
_MULTIMODAL_MODELS: dict[str, tuple[str, str]] = {
    "Gemma3ForConditionalGeneration": ("gemma3_mm", "Gemma3ForConditionalGeneration"),
}
"""
VLLM_QUANTIZATION = """
from typing import Literal
QuantizationMethods = Literal["awq", "fp8", "modelopt_fp4"]
"""
SGLANG_QUANTIZATION = """
BASE_QUANTIZATION_METHODS: dict[str, type] = {"fp8": object, "w8a8_int8": object}
if is_cpu() or is_cuda():
    BASE_QUANTIZATION_METHODS.update({"mxfp4": object})
if is_npu():
    BASE_QUANTIZATION_METHODS.update({"npu_only": object})
"""
SGLANG_MODELS = {
    "sglang/srt/layers/quantization/__init__.py": SGLANG_QUANTIZATION,
    "sglang/srt/models/llama.py": "class LlamaForCausalLM: ...\nEntryClass = LlamaForCausalLM\n",
    "sglang/srt/models/deepseek_v2.py": (
        "class DeepseekV2ForCausalLM: ...\nclass DeepseekV3ForCausalLM: ...\n"
        "EntryClass = [DeepseekV2ForCausalLM, DeepseekV3ForCausalLM]\n"
    ),
    "sglang/srt/models/utils.py": "def helper(): ...\n",
}


def _wheel(cache: Path, name: str, files: dict[str, str]) -> None:
    wheels = cache / "wheels"
    wheels.mkdir(parents=True)
    with zipfile.ZipFile(wheels / f"{name}-9.9.9-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, textwrap.dedent(text))


@pytest.mark.parametrize(
    ("engine", "files", "expected", "methods"),
    [
        (
            "vllm",
            {
                "vllm/model_executor/models/registry.py": VLLM_REGISTRY,
                "vllm/model_executor/layers/quantization/__init__.py": VLLM_QUANTIZATION,
            },
            ["Gemma3ForConditionalGeneration", "LlamaForCausalLM", "Qwen3NextForCausalLM"],
            ["awq", "fp8", "modelopt_fp4"],
        ),
        (
            "sglang",
            SGLANG_MODELS,
            ["DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM", "LlamaForCausalLM"],
            ["fp8", "mxfp4", "w8a8_int8"],
        ),
    ],
)
def test_generator_reads_the_registries_without_importing_them(
    engine: str, files: dict[str, str], expected: list[str], methods: list[str], tmp_path: Path
) -> None:
    _wheel(tmp_path / "cache", engine, files)
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, str(GENERATOR), engine, "9.9.9", "--out", str(out), "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    document = json.loads((out / f"{engine}-9.9.9.json").read_text())
    assert document["architectures"] == expected
    assert document["quantization_methods"] == methods
    assert document["generated_by"].startswith(
        f"scripts/gen_model_architectures.py {engine} 9.9.9 from {engine}-9.9.9-py3-none-any.whl"
    )


def test_every_pinned_version_loads_every_catalog_model() -> None:
    for engine in ("vllm", "sglang"):
        versions = versions_with_lists(engine)
        assert versions
        for version in versions:
            known = architectures(engine, version)
            assert known is not None
            missing = {m.architecture for m in load_models().values()} - known
            assert not missing, f"{engine} {version}: {sorted(missing)}"


def test_shipped_lists_hold_the_new_families() -> None:
    vllm, sglang = architectures("vllm", "0.33.0"), architectures("sglang", "0.5.23")
    assert vllm is not None and sglang is not None
    for name in ("DeepseekV32ForCausalLM", "Qwen3NextForCausalLM", "MiniMaxM2ForCausalLM"):
        assert name in vllm and name in sglang


def test_a_model_only_a_newer_version_loads_is_refused() -> None:
    model = load_models()["qwen3-8b"].model_copy(update={"architecture": "Step5ForCausalLM"})
    with pytest.raises(PlanError) as refused:
        check_loadable(model, "vllm", "0.32.0")
    assert str(refused.value) == (
        "vllm 0.32.0 cannot load Step5ForCausalLM (Qwen/Qwen3-8B); versions that load it: "
        "vllm 0.33.0; choose one with --engine/--engine-version"
    )
    assert check_loadable(model, "vllm", "0.33.0") == []


def _plan(**options: object) -> Plan:
    return build_plan(
        PlanRequest.model_validate(
            # TP8: the MTP layer's weights are split eight ways, whatever the goal's default.
            {"model": "deepseek-r1", "gpus": "8xH200", "tp": 8, "dp": 1, "ep": 1, **options}
        )
    )


def test_speculative_decoding_sizes_the_mtp_layer_in() -> None:
    plain = _plan()
    spec = _plan(
        engine_args=['--speculative-config={"method":"deepseek_mtp","num_speculative_tokens":1}']
    )
    assert plain.memory is not None and spec.memory is not None
    extra_gib = spec.memory.weights_gib_per_gpu - plain.memory.weights_gib_per_gpu
    # 11.6B MTP params of FP8 over TP8.
    assert extra_gib == pytest.approx(11.61e9 * (1 + 4 / 128**2) / 8 / 2**30, rel=0.05)
    assert (
        spec.memory.kv_bytes_per_token_per_gpu == plain.memory.kv_bytes_per_token_per_gpu * 62 // 61
    )
    assert plain.warnings[0].startswith("the checkpoint's MTP layers (11.6B params) are not loaded")
    assert spec.warnings[0].startswith("speculative decoding loads the checkpoint's MTP layers")


def test_a_catalog_model_records_the_revision_given() -> None:
    plan = build_plan(PlanRequest(model="qwen3-8b", gpus="1xH100", revision="v1.0"))
    assert (plan.model.source, plan.model.revision) == ("catalog", "v1.0")


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_render_passes_the_revision_to_the_engine(engine: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from orchestrator.cli import cli

    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["render", "qwen3-8b", "--gpus", "1xH100", "--engine", engine, "--revision", "v1.0",
         "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    compose = (out / "local" / "compose.yaml").read_text()
    assert '- "--revision"\n      - "v1.0"\n' in compose
    plan = json.loads((out / "plan.json").read_text())
    assert plan["model"]["revision"] == "v1.0"


@pytest.mark.parametrize(
    ("method", "engine", "refused"),
    [("fbgemm_fp8", "sglang", True), ("fbgemm_fp8", "vllm", False), ("gptq", "sglang", False),
     ("bitsandbytes", "vllm", True), ("bitsandbytes", "sglang", False)],
)  # fmt: skip
def test_quantization_methods_follow_each_version_registry(
    method: str, engine: str, refused: bool
) -> None:
    from orchestrator.models.engine_support import check_quantization
    from orchestrator.schema import QuantScheme

    base = load_models()["qwen3-8b"]
    checkpoint = base.checkpoint.model_copy(
        update={"format": "int8", "scheme": QuantScheme(method=method, weight_bits=8)}
    )
    model = base.model_copy(update={"checkpoint": checkpoint})
    version = "0.33.0" if engine == "vllm" else "0.5.23"
    if not refused:
        check_quantization(model, engine, version)
        return
    with pytest.raises(PlanError, match=f"^{engine} {version} cannot load {method} checkpoints"):
        check_quantization(model, engine, version)
