"""Malformed profiles and config.json files give one-line errors naming the file and field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.errors import CatalogError
from orchestrator.hardware.gpus import load_gpus_from
from orchestrator.models.catalog import load_models_from
from orchestrator.models.hf_config import model_from_directory
from orchestrator.models.lookup import find_model
from orchestrator.resources import profiles_dir

FIXTURE_MODELS = Path(__file__).resolve().parents[2] / "benchmarks" / "fixtures" / "models"


def _copy_profile(tmp_path: Path, kind: str, name: str) -> Path:
    target = tmp_path / kind
    target.mkdir()
    shutil.copy(profiles_dir() / kind / f"{name}.yaml", target / f"{name}.yaml")
    return target / f"{name}.yaml"


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = _copy_profile(tmp_path, "models", "qwen3-32b")
    lines = path.read_text().splitlines()
    lines[3] = "family: [unclosed"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CatalogError) as info:
        load_models_from(path.parent)
    message = str(info.value)
    assert message.startswith(f"{path}: line ")
    assert "invalid YAML" in message
    assert "\n" not in message


def test_unknown_field_names_file_and_field(tmp_path: Path) -> None:
    path = _copy_profile(tmp_path, "models", "qwen3-32b")
    path.write_text(path.read_text() + "num_layer: 64\n")
    with pytest.raises(CatalogError) as info:
        load_models_from(path.parent)
    assert str(info.value).startswith(f"{path}: field 'num_layer': Extra inputs are not permitted")


def test_wrong_type_names_the_nested_field(tmp_path: Path) -> None:
    path = _copy_profile(tmp_path, "gpus", "h100-sxm")
    path.write_text(path.read_text().replace("generation: 4", "generation: four"))
    with pytest.raises(CatalogError, match=r"field 'nvlink.generation'"):
        load_gpus_from(path.parent)


def test_a_profile_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = _copy_profile(tmp_path, "gpus", "l4")
    path.write_text("- just\n- a list\n")
    with pytest.raises(CatalogError, match=r"expected a mapping of fields, got list"):
        load_gpus_from(path.parent)


def test_duplicate_alias_across_models_is_reported(tmp_path: Path) -> None:
    from orchestrator.models.catalog import build_model_index

    path = _copy_profile(tmp_path, "models", "qwen3-32b")
    shutil.copy(profiles_dir() / "models" / "qwen3-8b.yaml", path.parent / "qwen3-8b.yaml")
    text = (
        (path.parent / "qwen3-8b.yaml").read_text().replace("aliases: []", "aliases:\n- qwen3-32b")
    )
    (path.parent / "qwen3-8b.yaml").write_text(text)
    with pytest.raises(CatalogError, match="claimed by both"):
        build_model_index(load_models_from(path.parent))


def _model_dir(tmp_path: Path, config: object) -> Path:
    directory = tmp_path / "my-model"
    directory.mkdir()
    (directory / "config.json").write_text(
        config if isinstance(config, str) else json.dumps(config)
    )
    return directory


def test_config_json_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    directory = _model_dir(tmp_path, '{\n  "hidden_size": 4096,\n  oops\n}')
    with pytest.raises(CatalogError) as info:
        find_model(str(directory))
    assert str(info.value).startswith(f"{directory / 'config.json'}: invalid JSON at line 3")


def test_config_json_missing_field_is_named(tmp_path: Path) -> None:
    directory = _model_dir(tmp_path, {"hidden_size": 4096, "num_hidden_layers": 32})
    with pytest.raises(CatalogError, match=r"config.json: field 'num_attention_heads' is missing"):
        model_from_directory(directory)


def test_config_json_bad_value_is_named(tmp_path: Path) -> None:
    config = {
        "hidden_size": 4096,
        "num_hidden_layers": "thirty-two",
        "num_attention_heads": 32,
        "vocab_size": 32000,
    }
    with pytest.raises(CatalogError, match=r"field 'num_hidden_layers' must be a positive integer"):
        model_from_directory(_model_dir(tmp_path, config))


def test_directory_without_config_json(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"has no config\.json"):
        model_from_directory(tmp_path)


def test_local_directory_counts_parameters_from_shapes(tmp_path: Path) -> None:
    directory = tmp_path / "Qwen3-0.6B"
    shutil.copytree(FIXTURE_MODELS / "Qwen3-0.6B", directory)
    profile = find_model(str(directory))
    hidden, layers, heads, kv_heads, head_dim, inter, vocab = 1024, 28, 16, 8, 128, 3072, 151936
    per_layer = (
        hidden * head_dim * (2 * heads + 2 * kv_heads)  # q, k, v, o
        + 3 * hidden * inter  # gated MLP
        + 2 * hidden  # two RMSNorms
        + 2 * head_dim  # q/k norms
    )
    assert profile.params_total == vocab * hidden + layers * per_layer + hidden  # tied embeddings
    assert (profile.name, profile.attention, profile.checkpoint.format) == (
        "qwen3-0.6b",
        "gqa",
        "bf16",
    )
    assert profile.checkpoint.bytes is None
    assert profile.source == f"local:{directory}"


def test_safetensors_index_gives_exact_checkpoint_bytes(tmp_path: Path) -> None:
    directory = tmp_path / "model"
    shutil.copytree(FIXTURE_MODELS / "Qwen3-0.6B", directory)
    (directory / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 1_503_300_328}, "weight_map": {}})
    )
    assert model_from_directory(directory).checkpoint.bytes == 1_503_300_328


def test_bad_safetensors_index_is_named(tmp_path: Path) -> None:
    directory = tmp_path / "model"
    shutil.copytree(FIXTURE_MODELS / "Qwen3-0.6B", directory)
    (directory / "model.safetensors.index.json").write_text('{"metadata": {"total_size": -5}}')
    with pytest.raises(CatalogError, match=r"index.json: field 'metadata.total_size'"):
        model_from_directory(directory)


def test_quantized_and_multimodal_configs(tmp_path: Path) -> None:
    fp8 = model_from_directory(FIXTURE_MODELS / "Llama-3.3-70B-Instruct-FP8-dynamic")
    assert fp8.checkpoint.format == "fp8"
    assert fp8.checkpoint.block_size is None  # per-channel scales
    assert fp8.params_total == 70_553_706_496  # same shapes as Llama-3.1-70B
    vlm = model_from_directory(FIXTURE_MODELS / "Mistral-Small-3.2-24B-Instruct-2506")
    assert vlm.multimodal
    assert (vlm.num_layers, vlm.num_kv_heads, vlm.head_dim) == (40, 8, 128)
