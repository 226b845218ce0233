"""Finding models and GPUs by the names people type."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import CatalogError
from orchestrator.hardware.gpus import find_gpu, gpu_from_nvml_name, parse_gpu_spec
from orchestrator.models.lookup import find_model


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("deepseek-r1", "deepseek-r1"),
        ("DeepSeek-R1", "deepseek-r1"),
        ("deepseek-ai/DeepSeek-R1", "deepseek-r1"),
        ("r1", "deepseek-r1"),
        ("DeepSeek-V3", "deepseek-v3"),
        ("qwen3:32b", "qwen3-32b"),
        ("Qwen/Qwen3-32B", "qwen3-32b"),
        ("llama-3-70b", "llama-3-70b"),
        ("meta-llama/Meta-Llama-3-70B-Instruct", "llama-3-70b"),
        ("Llama-3.1-405B-Instruct", "llama-3.1-405b"),
        ("llama-3.1-405b", "llama-3.1-405b"),
        ("gpt-oss-120b", "gpt-oss-120b"),
        ("openai/gpt-oss-20b", "gpt-oss-20b"),
        ("mixtral-8x22b", "mixtral-8x22b"),
        ("kimi-k2", "kimi-k2"),
        ("moonshotai/Kimi-K2-Instruct", "kimi-k2"),
        ("GLM-4.5", "glm-4.5"),
        ("llama-4-scout", "llama-4-scout"),
        ("Llama-4-Maverick-17B-128E-Instruct", "llama-4-maverick"),
        ("  QWEN3-235B-A22B ", "qwen3-235b-a22b"),
    ],
)
def test_find_model_accepts_aliases_hf_ids_and_case(text: str, name: str) -> None:
    assert find_model(text).name == name


def test_unknown_model_suggests_close_names_and_the_list_command() -> None:
    with pytest.raises(CatalogError) as info:
        find_model("deepseek-r2")
    message = str(info.value)
    assert message.startswith("unknown model 'deepseek-r2'; did you mean deepseek-r1")
    assert "deploy profiles list" in message
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_unknown_model_without_close_names_still_points_to_the_list() -> None:
    with pytest.raises(CatalogError, match=r"^unknown model 'zzzz'; run `deploy profiles list`"):
        find_model("zzzz")


def test_missing_model_directory_is_named() -> None:
    with pytest.raises(CatalogError, match=r"model directory './no/such/dir' does not exist"):
        find_model("./no/such/dir")


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("H100", "H100-80GB-SXM"),
        ("h100", "H100-80GB-SXM"),
        ("h100-sxm", "H100-80GB-SXM"),
        ("H100-80GB-SXM", "H100-80GB-SXM"),
        ("H100-80GB", "H100-80GB-SXM"),
        ("H100 80GB", "H100-80GB-SXM"),
        ("sxm h100", "H100-80GB-SXM"),
        ("NVIDIA H100 80GB HBM3", "H100-80GB-SXM"),
        ("h100-pcie", "H100-80GB-PCIE"),
        ("H100 PCIe", "H100-80GB-PCIE"),
        ("h100-nvl", "H100-94GB-NVL"),
        ("H200", "H200-141GB-SXM"),
        ("RTX4090", "RTX4090-24GB"),
        ("RTX-4090", "RTX4090-24GB"),
        ("rtx 4090", "RTX4090-24GB"),
        ("NVIDIA GeForce RTX 4090", "RTX4090-24GB"),
        ("A100", "A100-80GB-SXM"),
        ("A100-40GB", "A100-40GB-SXM"),
        ("a100 40gb pcie", "A100-40GB-PCIE"),
        ("l40s", "L40S-48GB"),
        ("rtx pro 6000", "RTX-PRO-6000-96GB"),
        ("RTX 6000 Ada", "RTX6000-ADA-48GB"),
        ("mi300x", "MI300X-192GB"),
        ("B200", "B200-180GB-SXM"),
    ],
)
def test_find_gpu_is_forgiving(text: str, name: str) -> None:
    assert find_gpu(text).name == name


def test_unknown_gpu_names_close_ones() -> None:
    with pytest.raises(CatalogError) as info:
        find_gpu("H900")
    message = str(info.value)
    assert message.startswith("unknown GPU 'H900'; did you mean ")
    assert "H100-80GB-SXM" in message
    assert "deploy profiles list --gpus" in message


@pytest.mark.parametrize(
    ("text", "count", "name"),
    [
        ("8xH200", 8, "H200-141GB-SXM"),
        ("8x H100-80GB", 8, "H100-80GB-SXM"),
        ("4xRTX4090", 4, "RTX4090-24GB"),
        ("2 x l40s", 2, "L40S-48GB"),
        ("16*B200", 16, "B200-180GB-SXM"),
        ("H100", None, "H100-80GB-SXM"),
        ("h100-sxm", None, "H100-80GB-SXM"),
    ],
)
def test_parse_gpu_spec(text: str, count: int | None, name: str) -> None:
    parsed_count, spec = parse_gpu_spec(text)
    assert (parsed_count, spec.name) == (count, name)


def test_zero_gpus_is_an_error() -> None:
    with pytest.raises(CatalogError, match=r"^GPU spec '0xH100' asks for 0 GPUs; the count must"):
        parse_gpu_spec("0xH100")


def test_empty_gpu_spec_is_an_error() -> None:
    with pytest.raises(CatalogError, match="empty GPU spec"):
        parse_gpu_spec("  ")


def test_gpu_from_nvml_name() -> None:
    assert gpu_from_nvml_name("NVIDIA H100 80GB HBM3").name == "H100-80GB-SXM"  # type: ignore[union-attr]
    assert gpu_from_nvml_name("NVIDIA H200", 150_000_000_000).name == "H200-141GB-SXM"  # type: ignore[union-attr]
    assert gpu_from_nvml_name("NVIDIA A100-SXM4-40GB").name == "A100-40GB-SXM"  # type: ignore[union-attr]
    assert gpu_from_nvml_name("nvidia geforce rtx 3090").name == "RTX3090-24GB"  # type: ignore[union-attr]
    assert gpu_from_nvml_name("NVIDIA H100 80GB").name == "H100-80GB-SXM"  # type: ignore[union-attr]
    assert gpu_from_nvml_name("Tesla T4") is None
    # A GPU that is not in the catalog is not guessed from a similar name.
    assert gpu_from_nvml_name("NVIDIA L40") is None
    assert gpu_from_nvml_name("NVIDIA A10") is None


def test_a_stray_folder_named_like_a_model_does_not_hide_the_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "qwen3-8b").mkdir()
    monkeypatch.chdir(tmp_path)
    assert find_model("qwen3-8b").hf_id == "Qwen/Qwen3-8B"
    (tmp_path / "qwen3-8b" / "config.json").write_text("{}")
    with pytest.raises(CatalogError, match=r"config.json: field 'hidden_size' is missing"):
        find_model("qwen3-8b")
