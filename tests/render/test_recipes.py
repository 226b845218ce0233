"""Recipes as data: every published setting is a flag the engine version accepts, carries its
source, applies only where it matches, and gives way to the user's --engine-arg."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.engines import sglang, vllm
from orchestrator.engines.flags import known_versions, load_schema
from orchestrator.engines.recipes import gpu_arch, load_recipes, redundant_experts
from orchestrator.versioning import at_least

REPO = Path(__file__).resolve().parent.parent.parent
TWO = str(REPO / "profiles" / "clusters" / "two-node-h100-ib.yaml")
MANAGED = {"vllm": vllm.MANAGED, "sglang": sglang.MANAGED}
DEP16 = [
    "deepseek-v3",
    "--engine",
    "vllm",
    "--cluster",
    TWO,
    "--tp",
    "1",
    "--dp",
    "16",
    "--ep",
    "16",
]


def _versions(engine: str, since: str | None) -> list[str]:
    return [
        version for version in known_versions(engine) if since is None or at_least(version, since)
    ]


@pytest.mark.parametrize("recipe", load_recipes(), ids=lambda recipe: recipe.name)
def test_recipe_flags_are_accepted_by_every_version_they_apply_to(recipe: object) -> None:
    from orchestrator.engines.recipes import Recipe

    assert isinstance(recipe, Recipe)
    engine = recipe.match.engine
    assert recipe.source.startswith("https://") and recipe.command
    versions = _versions(engine, recipe.match.min_version)
    assert versions, f"{recipe.name} applies to no pinned version"
    for item in recipe.flags:
        assert item.flag not in MANAGED[engine], f"{recipe.name}: {item.flag} is layout wiring"
        assert item.why
        for version in versions:
            spec = load_schema(engine, version).lookup(item.flag)
            assert spec is not None, f"{recipe.name}: {engine} {version} has no {item.flag}"
            takes_value = item.value is not None or bool(
                item.per_attn_dp_rank or item.local_dp_ranks or item.redundant_experts_at_least
            )
            assert (spec.nargs != 0) == takes_value, f"{recipe.name}: {item.flag} arity"


def test_redundant_experts_divide_over_the_ep_ranks() -> None:
    # LMSYS: 256 routed + 32 redundant over EP32 (9 each) and EP72 (4 each).
    assert redundant_experts(32, 256, 32) == 32
    assert redundant_experts(32, 256, 72) == 32
    assert redundant_experts(32, 256, 64) == 64
    assert redundant_experts(32, 256, 16) == 32
    assert redundant_experts(32, 128, 48) == 64


def test_gpu_generations() -> None:
    assert [gpu_arch(cc) for cc in ("9.0", "10.0", "12.0", "8.9", "8.0", "8.6", None)] == [
        "hopper",
        "blackwell",
        "blackwell",
        "ada",
        "ampere",
        "ampere",
        "other",
    ]


def _command(tmp_path: Path, args: list[str], node: str, service: str) -> list[str]:
    import yaml

    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["render", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    compose = yaml.safe_load((out / node / "compose.yaml").read_text(encoding="utf-8"))
    return [str(word) for word in compose["services"][service]["command"]]


def test_a_user_value_replaces_the_recipe_value(tmp_path: Path) -> None:
    args = ["gpt-oss-120b", "--gpus", "1xH100", "--engine-arg=--max-num-batched-tokens=4096"]
    command = _command(tmp_path, args, "local", "serve-0")
    assert "--max-num-batched-tokens=4096" in command
    assert "--max-num-batched-tokens" not in command  # the recipe's 8192 is gone
    assert "--stream-interval" in command  # the rest of the recipe stays


def test_a_user_negation_removes_a_recipe_switch(tmp_path: Path) -> None:
    plain = _command(tmp_path / "a", DEP16, "h100-a", "serve-0-rank0")
    assert "--enable-dbo" in plain
    negated = _command(
        tmp_path / "b", [*DEP16, "--engine-arg=--disable-dbo"], "h100-a", "serve-0-rank0"
    )
    assert "--enable-dbo" not in negated and "--disable-dbo" in negated


def test_a_dotted_user_setting_replaces_the_recipe_json(tmp_path: Path) -> None:
    args = [*DEP16, "--engine-arg=--eplb-config.num_redundant_experts=16"]
    command = _command(tmp_path, args, "h100-a", "serve-0-rank0")
    assert "--eplb-config" not in command
    assert "--eplb-config.num_redundant_experts=16" in command
    assert "--enable-eplb" in command


def test_recipes_match_the_model_family_not_its_distills(tmp_path: Path) -> None:
    args = ["deepseek-r1-distill-llama-70b", "--gpus", "8xH100", "--tp", "8"]
    assert "--trust-remote-code" not in _command(tmp_path, args, "local", "serve-0")


def test_hopper_recipe_does_not_apply_on_ampere(tmp_path: Path) -> None:
    command = _command(tmp_path, ["gpt-oss-120b", "--gpus", "1xA100-80GB"], "local", "serve-0")
    assert "--stream-interval" not in command


def test_dry_run_shows_recipe_origin_and_source() -> None:
    result = CliRunner().invoke(cli, ["up", "gpt-oss-120b", "--gpus", "1xH100", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert (
        "      --stream-interval             recipe          stream every 20 tokens to maximise "
        "throughput (vLLM recipes, gpt-oss on Hopper: https://github.com/vllm-project/recipes/"
        "blob/main/OpenAI/GPT-OSS.md#recipe-for-nvidia-blackwell-hopper-hardware)\n"
    ) in result.output


@pytest.mark.parametrize(
    ("model", "engine", "expected"),
    [
        (
            "qwen3-8b",
            "vllm",
            ["--reasoning-parser qwen3", "--enable-auto-tool-choice", "--tool-call-parser hermes"],
        ),
        ("qwen3-8b", "sglang", ["--reasoning-parser qwen3", "--tool-call-parser qwen25"]),
        ("deepseek-r1-distill-qwen-7b", "vllm", ["--reasoning-parser deepseek_r1"]),
        ("deepseek-r1-distill-qwen-7b", "sglang", ["--reasoning-parser deepseek-r1"]),
    ],
)
def test_reasoning_and_tool_parsers_of_the_families_that_publish_them(
    model: str, engine: str, expected: list[str]
) -> None:
    args = ["up", model, "--gpus", "1xH100", "--engine", engine, "--dry-run"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    command = " ".join(line.strip().rstrip("\\").strip() for line in result.output.splitlines())
    for words in expected:
        assert f" {words} " in f"{command} ", words
        assert "recipe" in result.output


def test_no_parser_for_models_that_do_not_think(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["up", "llama-3.1-8b", "--gpus", "1xH100", "--dry-run"])
    assert result.exit_code == 0
    assert "--reasoning-parser" not in result.output and "--tool-call-parser" not in result.output


def test_parsers_run_on_the_api_rank_only(tmp_path: Path) -> None:
    """A headless rank > 0 serves no HTTP: it gets no parser flags."""
    args = ["deepseek-r1", "--engine", "sglang", "--cluster", TWO, "--nodes", "2"]
    assert "--reasoning-parser" in _command(tmp_path / "a", args, "h100-a", "serve-0-rank0")
    assert "--reasoning-parser" not in _command(tmp_path / "b", args, "h100-b", "serve-0-rank1")
