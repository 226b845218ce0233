"""`format_dry_run`: the plan summary and each service's exact command with flag origins."""

from __future__ import annotations

import shlex

from orchestrator.cli.dryrun import command_lines, format_dry_run
from orchestrator.engines import build_services

from .conftest import scenario


def _joined(lines: list[str]) -> str:
    return " ".join(line.strip().removesuffix("\\").strip() for line in lines)


def test_command_lines_are_the_exact_argv_one_flag_per_line() -> None:
    plan = scenario("vllm", "pd1node", request={"engine_args": ["--chat-template", "a b'c\n$x"]})
    for spec in build_services(plan):
        lines = command_lines(spec)
        assert all(line.endswith(" \\") for line in lines[:-1])
        assert not lines[-1].endswith("\\")
        assert shlex.split(_joined(lines)) == [*(spec.entrypoint or []), *spec.command]
        flags = [line.strip().split(" ")[0] for line in lines[1:]]
        assert all(flag.startswith("-") for flag in flags)


def test_dry_run_of_a_two_node_plan() -> None:
    plan = scenario("vllm", "2node")
    services = build_services(plan)
    text = format_dry_run(plan, services)
    lines = text.splitlines()
    assert lines[0] == (
        "deployment llama-3.1-405b: meta-llama/Llama-3.1-405B-Instruct on vllm 0.33.0 "
        "(vllm/vllm-openai:v0.33.0)"
    )
    assert "serve: TP8×PP2 × 1 instance(s), 16 GPU(s) each" in lines
    assert "endpoint: http://127.0.0.1:8000 on gpu-a" in lines
    assert "node gpu-a (192.0.2.10)" in lines and "node gpu-b (192.0.2.11)" in lines
    assert lines.index("node gpu-a (192.0.2.10)") < lines.index("node gpu-b (192.0.2.11)")
    assert "  serve-0-rank1  [serve, replica 0 rank 1, GPUs 0-7, host network]" in lines
    minutes = services[1].probe.start_period_s // 60
    assert (
        f"    image vllm/vllm-openai:v0.33.0; ready: process running (headless), "
        f"start period {minutes} min"
    ) in lines
    assert "      --headless \\" in lines
    origins = [
        line.split() for line in lines if line.startswith("      --pipeline-parallel-size  ")
    ]
    assert origins and origins[0][1] == "resolver"
    assert any(
        line.split()[:2] == ["--master-addr", "deploy"]
        for line in lines
        if line.startswith("      --master-addr ")
    )
    assert text.endswith("\n")


def test_dry_run_names_secrets_by_reference_only() -> None:
    plan = scenario("sglang", "1gpu", request={"api_key_env": "MY_KEY"})
    text = format_dry_run(plan, build_services(plan))
    assert "env: HF_TOKEN (from host), MY_KEY (from host)" in text
    assert "SGLANG_API_KEY=${MY_KEY}" in text and "${MY_KEY}'" not in text


def test_dry_run_shows_user_flags_as_user() -> None:
    plan = scenario("sglang", "1gpu", request={"engine_args": ["--max-running-requests", "64"]})
    text = format_dry_run(plan, build_services(plan))
    line = next(
        line for line in text.splitlines() if line.strip().startswith("--max-running-requests  ")
    )
    assert line.split()[1:] == ["user", "--engine-arg"]
