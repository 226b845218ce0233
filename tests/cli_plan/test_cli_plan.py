"""`deploy plan` through the real click root: output, JSON contract and exit codes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.planning.build import build_plan
from orchestrator.planning.request import PlanRequest
from orchestrator.resources import profiles_dir

TWO_NODE_IB = str(profiles_dir() / "clusters" / "two-node-h100-ib.yaml")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["plan", *args])
    return result.exit_code, result.stdout, result.stderr


def test_human_report_of_a_fitting_plan() -> None:
    code, out, err = run("qwen3-32b", "--gpus", "2xH100")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == ("model     qwen3-32b (Qwen/Qwen3-32B): 32.8B params, dense, GQA, bf16")
    assert lines[1] == "engine    vllm 0.33.0 (vllm/vllm-openai:v0.33.0)"
    assert "plan: qwen3-32b - FITS" in lines
    assert "  serve  TP2          1          2     local[0-1]" in lines
    for heading in ("memory:", "why:", "alternatives:"):
        assert heading in lines
    for row in (
        "weights",
        "KV per token",
        "KV per request",
        "KV capacity (instance)",
        "max concurrency",
        "fits",
    ):
        assert any(line.startswith(f"  {row} ") for line in lines), row
    assert any(line.startswith("  fits ") and "yes," in line for line in lines)
    assert "suggestion:" not in out


def test_json_is_exactly_the_plan_dump() -> None:
    code, out, _ = run("deepseek-r1", "--gpus", "8xH200", "--goal", "throughput", "--json")
    assert code == 0
    document = json.loads(out)
    expected = build_plan(PlanRequest(model="deepseek-r1", gpus="8xH200", goal="throughput"))
    assert document == expected.model_dump(mode="json")
    for key in (
        "model",
        "engine",
        "hardware",
        "parallelism",
        "roles",
        "memory",
        "fits",
        "rationale",
        "warnings",
    ):
        assert key in document
    assert document["parallelism"] == {"tp": 1, "pp": 1, "dp": 8, "ep": 8, "attn_dp": 8}
    assert set(document["memory"]) >= {
        "weights_gib_per_gpu",
        "kv_bytes_per_token_per_gpu",
        "kv_cache_gib_per_gpu",
        "kv_cache_tokens",
        "max_concurrency",
        "overhead_gib_per_gpu",
    }


def test_json_is_deterministic() -> None:
    first = run("deepseek-r1", "--cluster", TWO_NODE_IB, "--engine", "sglang", "--json")
    second = run("deepseek-r1", "--cluster", TWO_NODE_IB, "--engine", "sglang", "--json")
    assert first == second


def test_does_not_fit_prints_plan_and_suggestion_and_exits_2() -> None:
    code, out, _ = run("deepseek-r1", "--gpus", "8xH100")
    assert code == 2
    assert "plan: deepseek-r1 - DOES NOT FIT" in out
    assert out.splitlines()[-1] == (
        "suggestion: fits on 2 nodes of 8×H100-80GB-SXM or 4×GB200-186GB-NVL72; even with memory "
        "fraction 0.95, an FP8 KV cache, context 4096, 2048 batched tokens, eager mode the "
        "closest layout (TP8) is short 5.1 GiB per GPU"
    )


def test_does_not_fit_json_still_prints_the_plan() -> None:
    code, out, _ = run("deepseek-r1", "--gpus", "8xH100", "--json")
    assert code == 2
    document = json.loads(out)
    assert document["fits"] is False
    assert document["suggestion"].startswith(
        "fits on 2 nodes of 8×H100-80GB-SXM or 4×GB200-186GB-NVL72; even with memory fraction 0.95"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-model", "--gpus", "8xH100"], "error: unknown model 'no-such-model'"),
        (["qwen3-32b", "--gpus", "0xH100"], "error: --gpus '0xH100'"),
        (
            ["qwen3-32b", "--gpus", "8xH100", "--tp", "3"],
            "error: TP 3 does not divide the 64 attention heads of qwen3-32b; valid: 1, 2, 4, 8",
        ),
        (["qwen3-32b", "--gpus", "8xNoSuchGpu"], "error: --gpus '8xNoSuchGpu': unknown GPU"),
        (
            ["qwen3-32b", "--gpus", "8xH100", "--context", "100000"],
            "error: --context 100000 is longer than qwen3-32b's maximum of 40960 tokens; "
            "use --context 40960 or less",
        ),
        (
            ["qwen3-32b", "--gpus", "8xH100", "--name", "Bad_Name"],
            "error: --name 'Bad_Name' is not a DNS label",
        ),
        (
            ["qwen3-32b", "--gpus", "8xH100", "--decode-gpus", "4"],
            "error: --prefill-gpus/--decode-gpus",
        ),
        (
            ["llama-3.1-70b", "--gpus", "4xH100", "--disagg"],
            "error: --disagg needs two instances",
        ),
        (
            [
                "qwen3-8b",
                "--gpus",
                "1xH100",
                "--engine",
                "sglang",
                "--engine-arg=--cuda-graph-max-bs-decode=abc",
            ],
            "error: --cuda-graph-max-bs-decode abc is not accepted by sglang 0.5.23",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    code, out, err = run(*args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(message)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_engine_flags_are_checked_as_part_of_a_command(engine: str) -> None:
    """--engine-arg flags are a piece of the command: the engine's required flags (SGLang's
    --model-path) and its positionals come from the renderer, not from the user."""
    flag = "--enable-metrics" if engine == "sglang" else "--enable-log-requests"
    code, _, err = run("qwen3-8b", "--gpus", "1xH100", "--engine", engine, f"--engine-arg={flag}")
    assert code == 0, err


def test_pins_are_honoured() -> None:
    code, out, _ = run("qwen3-32b", "--gpus", "8xH100", "--tp", "4", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["parallelism"]["tp"] == 4
    assert document["request"]["pins"] == {"tp": 4}
    assert len(document["roles"][0]["replicas"]) == 2


def test_max_gpus_limits_the_plan() -> None:
    code, out, _ = run("llama-3.1-8b", "--gpus", "8xH100", "--max-gpus", "3", "--json")
    assert code == 0
    serve = json.loads(out)["roles"][0]
    used = [
        g for replica in serve["replicas"] for piece in replica["slices"] for g in piece["gpus"]
    ]
    assert len(used) <= 3


def test_name_defaults_to_the_model_alias() -> None:
    code, out, _ = run("Qwen/Qwen3-32B", "--gpus", "2xH100", "--json")
    assert code == 0
    assert json.loads(out)["name"] == "qwen3-32b"
    code, out, _ = run("qwen3-32b", "--gpus", "2xH100", "--name", "chat-prod", "--json")
    assert json.loads(out)["name"] == "chat-prod"


def test_disaggregated_report_lists_three_roles() -> None:
    code, out, _ = run("llama-3.1-8b", "--gpus", "8xH100", "--disagg")
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("  prefill ") for line in lines)
    assert any(line.startswith("  decode ") for line in lines)
    assert any(line.startswith("  router ") for line in lines)


def test_pinned_tp_across_ethernet_is_honoured_with_a_warning() -> None:
    code, out, _ = run("llama-3.1-405b", "--gpus", "8xH100", "--nodes", "2", "--tp", "16")
    assert code == 0
    assert "  serve  TP16         1          16    node1[0-7] + node2[0-7]" in out.splitlines()
    assert (
        "  - TP16 spans nodes: needs InfiniBand/RoCE between nodes; cluster says ethernet"
        in out.splitlines()
    )


def test_sglang_attention_dp_pin() -> None:
    code, out, _ = run(
        "deepseek-r1", "--gpus", "8xH200", "--engine", "sglang", "--attn-dp", "4", "--json"
    )
    assert code == 0
    # SGLang's DP-attention recipe for DeepSeek (`--tp 8 --enable-dp-attention --dp 8`,
    # benchmark/deepseek_v3/README.md) adds no EP.
    assert json.loads(out)["parallelism"] == {"tp": 8, "pp": 1, "dp": 1, "ep": 1, "attn_dp": 4}
