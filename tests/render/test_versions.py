"""Version-dependent spellings: each pinned version gets the flags its parser accepts, and
the schema check catches a spelling rendered for the wrong version."""

from __future__ import annotations

import pytest

from orchestrator.engines import build_services
from orchestrator.engines.flags import check_argv
from orchestrator.errors import FlagError

from .conftest import scenario


def _command(engine: str, layout: str, version: str) -> list[str]:
    plan = scenario(engine, layout, version=version)
    return next(spec for spec in build_services(plan) if spec.rank == 0).command


def test_vllm_request_logging_stays_at_its_default_off() -> None:
    # Both pinned versions log no requests unless --enable-log-requests is given.
    for version in ("0.32.0", "0.33.0"):
        command = _command("vllm", "1gpu", version)
        assert not [word for word in command if "log-requests" in word]


def test_flag_introduced_in_033_is_rejected_by_032_schema() -> None:
    new = [*_command("vllm", "1gpu", "0.33.0"), "--disable-log-requests"]
    with pytest.raises(FlagError, match="--disable-log-requests"):
        check_argv("vllm", "0.32.0", new)
    check_argv("vllm", "0.33.0", new)


def test_sglang_attention_dp_is_spelt_per_version() -> None:
    new = _command("sglang", "dpep", "0.5.23")
    old = _command("sglang", "dpep", "0.5.21")
    assert new[new.index("--attn-dp-size") + 1] == "8"
    assert "--enable-dp-attention" not in new
    assert old[old.index("--dp-size") + 1] == "8"
    assert "--enable-dp-attention" in old and "--attn-dp-size" not in old
    with pytest.raises(FlagError, match="--attn-dp-size"):
        check_argv("sglang", "0.5.21", new)


def test_user_flag_unknown_to_the_version_fails_the_render() -> None:
    plan = scenario(
        "vllm", "1gpu", request={"engine_args": ["--disable-log-stats", "--tp-size", "2"]}
    )
    with pytest.raises(FlagError, match="--tp-size"):
        build_services(plan)


def test_sglang_cuda12_tag_renders_with_its_own_schema() -> None:
    """R535-R570 drivers run CUDA 12 at most: SGLang 0.5.19's CUDA 12 build is pinned with
    the flag schema generated from its wheel, and doctor points old drivers to it."""
    from click.testing import CliRunner

    from orchestrator.cli import cli
    from orchestrator.doctor.cuda import driver_fix
    from orchestrator.engines.flags import load_schema
    from orchestrator.engines.versions import image_for, resolve_version

    assert resolve_version("sglang", "0.5.19") == "0.5.19"
    assert image_for("sglang", "0.5.19") == "lmsysorg/sglang:v0.5.19-cu129"
    assert image_for("sglang", "0.5.23") == "lmsysorg/sglang:v0.5.23"
    schema = load_schema("sglang", "0.5.19")
    assert schema.version == "0.5.19"
    args = ["up", "qwen3-8b", "--gpus", "1xH100", "--engine", "sglang", "--dry-run"]
    result = CliRunner().invoke(cli, [*args, "--engine-version", "0.5.19"])
    assert result.exit_code == 0, result.output
    assert "on sglang 0.5.19 (lmsysorg/sglang:v0.5.19-cu129)" in result.output
    fix = driver_fix("sglang", (13, 0), (12, 2))
    assert "render with --engine-version 0.5.19 (lmsysorg/sglang:v0.5.19-cu129" in fix
