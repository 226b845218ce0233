"""Version-dependent spellings: each pinned version gets the flags its parser accepts, and
the schema check catches a spelling rendered for the wrong version."""

from __future__ import annotations

import pytest

from orchestrator.engines import build_services
from orchestrator.errors import FlagError
from orchestrator.flags import check_argv

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
