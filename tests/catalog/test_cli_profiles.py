"""`deploy profiles list/show` through the real click root."""

from __future__ import annotations

import json

from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.hardware.gpus import load_gpus
from orchestrator.models.catalog import load_models


def test_list_models_prints_an_aligned_table() -> None:
    result = CliRunner().invoke(cli, ["profiles", "list"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "MODEL",
        "HF",
        "ID",
        "PARAMS",
        "ACTIVE",
        "ATTN",
        "WEIGHTS",
        "MAX",
        "CTX",
    ]
    assert len(lines) == 1 + len(load_models())
    r1 = next(line for line in lines if line.startswith("deepseek-r1 "))
    assert r1.split() == [
        "deepseek-r1",
        "deepseek-ai/DeepSeek-R1",
        "671.0B",
        "37.6B",
        "MLA",
        "fp8",
        "163840",
    ]
    # Columns line up: every row starts its HF id where the header's does.
    column = lines[0].index("HF ID")
    assert all(line[column - 2 : column] == "  " for line in lines[1:])


def test_list_models_json() -> None:
    result = CliRunner().invoke(cli, ["profiles", "list", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert [entry["name"] for entry in data] == sorted(load_models())
    assert data[0]["hf_id"]


def test_list_gpus() -> None:
    result = CliRunner().invoke(cli, ["profiles", "list", "--gpus"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["GPU", "GiB", "GB/s"]
    h100 = next(line for line in lines if line.startswith("H100-80GB-SXM "))
    assert h100.split()[:7] == ["H100-80GB-SXM", "79.18", "3350", "989", "1979", "NVLink4", "900"]
    a100 = next(line for line in lines if line.startswith("A100-80GB-PCIE "))
    assert "PCIe4" in a100.split()


def test_list_gpus_json() -> None:
    result = CliRunner().invoke(cli, ["profiles", "list", "--gpus", "--json"])
    assert result.exit_code == 0
    assert {entry["name"] for entry in json.loads(result.output)} == set(load_gpus())


def test_show_model_by_alias() -> None:
    result = CliRunner().invoke(cli, ["profiles", "show", "Qwen/Qwen3-32B"])
    assert result.exit_code == 0
    fields = dict(
        (line[:12].strip(), line[12:].strip())
        for line in result.output.splitlines()
        if not line.startswith("note:")
    )
    assert fields["name"] == "qwen3-32b"
    assert fields["attention"] == "GQA"
    assert fields["heads"] == "64 query, 8 KV, head_dim 128"
    assert fields["KV cache"] == "262,144 B/token (BF16, layers that grow with context)"
    assert fields["weights"] == "61.0 GiB (one GPU, checkpoint format)"


def test_show_mla_model_mentions_latent_and_mtp() -> None:
    result = CliRunner().invoke(cli, ["profiles", "show", "deepseek-r1"])
    assert result.exit_code == 0
    assert "kv_lora_rank 512 + rope 64" in result.output
    assert "70,272 B/token" in result.output
    assert "11.6B (loaded only with MTP)" in result.output


def test_show_json_round_trips_the_profile() -> None:
    result = CliRunner().invoke(cli, ["profiles", "show", "gpt-oss-120b", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data == load_models()["gpt-oss-120b"].model_dump(mode="json")


def test_show_unknown_model_exits_2_with_one_line() -> None:
    result = CliRunner().invoke(cli, ["profiles", "show", "qwen3-33b"])
    assert result.exit_code == 2
    assert result.output == (
        "error: unknown model 'qwen3-33b'; did you mean qwen3-32b, qwen3-30b-a3b, qwen3-235b-a22b? "
        "run `deploy profiles list` to see the catalog, pass a Hugging Face repo id (owner/name), "
        "or a local directory with config.json\n"
    )
