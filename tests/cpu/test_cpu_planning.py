"""Planning on CPU nodes: the KV capacity follows vLLM's CPU rule, and what the CPU build
cannot run is refused in one line (exit code 2)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from orchestrator.cli import cli
from orchestrator.planning.build import build_plan
from orchestrator.planning.cpu.memory import logged_kv_tokens
from orchestrator.planning.request import PlanRequest

from .conftest import cpu_cluster

GIB = 2**30


def vllm_cpu_tokens(
    space_gib: int, layers: int, kv_heads: int, head: int, block: int, context: int
) -> int:
    """vLLM 0.32.0, spelled as its code does: a page per layer of 2 x block x heads x head
    x 2 bytes (AttentionSpec.page_size_bytes), blocks = available // sum of pages
    (get_kv_cache_config_from_groups), concurrency = blocks / cdiv(max_model_len, block)
    (get_max_concurrency_for_kv_cache_config), tokens = int(concurrency x max_model_len)."""
    page = 2 * block * kv_heads * head * 2
    blocks = space_gib * GIB // (layers * page)
    concurrency = blocks / -(-context // block)
    return int(concurrency * context)


@pytest.mark.parametrize("context", [4096, 1000, 333, 4095])
@pytest.mark.parametrize(("tp", "pp"), [(1, 1), (2, 1), (1, 2)])
def test_kv_tokens_follow_the_engine_rule(
    tiny_model: Path, tmp_path: Path, context: int, tp: int, pp: int
) -> None:
    cluster = cpu_cluster(tmp_path, cores=4, memory=16)
    plan = build_plan(
        PlanRequest(model=str(tiny_model), cluster=cluster, context=context, tp=tp, pp=pp)
    )
    assert plan.cpu is not None
    # Tiny model: 2 layers, 2 KV heads of 64; TP splits the heads, PP the layers.
    expected = vllm_cpu_tokens(
        plan.cpu.kvcache_space_gib, math.ceil(2 / pp), 2 // tp, 64, 128, context
    )
    assert plan.cpu.kv_cache_tokens_per_engine == expected
    assert plan.memory.kv_cache_tokens == expected
    assert logged_kv_tokens(1, 1024, 128, 4096) == 1_048_576


def test_dp_engines_each_hold_their_pool(tiny_model: Path, tmp_path: Path) -> None:
    cluster = cpu_cluster(tmp_path, cores=4, memory=16)
    plan = build_plan(PlanRequest(model=str(tiny_model), cluster=cluster, context=4096, dp=2))
    assert plan.cpu is not None
    assert plan.memory.kv_cache_tokens == 2 * plan.cpu.kv_cache_tokens_per_engine


def test_kv_space_follows_the_concurrency_and_the_room(tmp_path: Path) -> None:
    cluster = cpu_cluster(tmp_path, cores=8, memory=64)
    small = build_plan(
        PlanRequest(model="llama-3.1-8b", cluster=cluster, context=8192, concurrency=2)
    )
    large = build_plan(
        PlanRequest(model="llama-3.1-8b", cluster=cluster, context=8192, concurrency=24)
    )
    assert small.cpu is not None and large.cpu is not None
    # 8192 tokens x 128 KiB = 1 GiB per request.
    assert small.cpu.kvcache_space_gib == 2
    assert large.cpu.kvcache_space_gib == 24
    # Host memory left after weights and runtime bounds it: 64 x 0.9 - 15 - 2.5 = 40.1 GiB.
    huge = build_plan(
        PlanRequest(model="llama-3.1-8b", cluster=cluster, context=8192, concurrency=36)
    )
    assert huge.cpu is not None and huge.cpu.kvcache_space_gib == 36
    assert huge.fits


def test_a_model_too_large_for_one_node_gets_stages_across_nodes(tmp_path: Path) -> None:
    # Qwen3-32B: 61 GiB of BF16 weights, more than 0.9 x 64 GiB.
    cluster = cpu_cluster(tmp_path, nodes=2, cores=16, memory=64)
    plan = build_plan(PlanRequest(model="qwen3-32b", cluster=cluster, context=4096))
    assert plan.parallelism.pp == 2 and plan.fits
    serve = plan.role("serve")
    assert serve is not None and len(serve.replicas) == 1
    assert [piece.node for piece in serve.replicas[0].slices] == ["cpu1", "cpu2"]


def _fails(cli_runner, args: list[str]) -> str:  # type: ignore[no-untyped-def]
    result = cli_runner.invoke(cli, ["plan", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_one_line_errors(cli_runner, tiny_model: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cluster = str(cpu_cluster(tmp_path, cores=4, memory=16))
    small = str(cpu_cluster(tmp_path / "small", cores=4, memory=8))
    tiny = str(tiny_model)
    cases = {
        "does not fit the host memory": ["llama-3.1-70b", "--cluster", cluster],
        "publishes no CPU build on PyPI": [tiny, "--cluster", cluster, "--engine", "sglang"],
        "GPU-only quantization": ["llama-3.1-8b", "--cluster", small, "--quantization", "fp8"],
        "no kernels": ["gpt-oss-20b", "--cluster", cluster],
        "has no CPU image here": [tiny, "--cluster", cluster, "--engine-version", "0.33.0"],
        "needs compile mode": [
            tiny,
            "--cluster",
            cluster,
            "--pp",
            "2",
            "--engine-arg=--enforce-eager",
        ],
        "does not divide": [tiny, "--cluster", cluster, "--tp", "3"],
        "cannot be split evenly": [tiny, "--cluster", cluster, "--dp", "8"],
        "both describe the hardware": [tiny, "--cpus", "2", "--cluster", cluster],
        "not planned for prefill/decode on CPU": [
            tiny,
            "--cluster",
            cluster,
            "--disagg",
            "--pp",
            "2",
        ],
        "mooncake is not planned on CPU": [
            tiny,
            "--cluster",
            cluster,
            "--disagg",
            "--kv-connector",
            "mooncake",
        ],
        "each need 8 cores": [tiny, "--cluster", cluster, "--disagg", "--tp", "4"],
        "is not a CPU description": [tiny, "--cpus", "lots"],
        "more stages than": [tiny, "--cluster", cluster, "--pp", "4"],
    }
    for expected, args in cases.items():
        line = _fails(cli_runner, args)
        assert expected in line, (args, line)


def test_head_dim_the_cpu_kernels_reject(tiny_model: Path, tmp_path: Path, cli_runner) -> None:  # type: ignore[no-untyped-def]
    config = (tiny_model / "config.json").read_text()
    (tiny_model / "config.json").write_text(
        config.replace('"head_dim": 64', '"head_dim": 16').replace(
            '"hidden_size": 256', '"hidden_size": 64'
        )
    )
    line = _fails(cli_runner, [str(tiny_model), "--cluster", str(cpu_cluster(tmp_path))])
    assert "head_dim 16" in line


def test_cluster_file_cpu_errors_name_the_line(tmp_path: Path, cli_runner) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.yaml"
    path.write_text(
        "nodes:\n  - name: a\n    address: 192.0.2.1\n    cpus: {cores: 8, memory_gib: 8, numa_nodes: 2, cpu_lists: ['0-3']}\n"
    )
    line = _fails(cli_runner, ["llama-3.1-8b", "--cluster", str(path)])
    assert "bad.yaml" in line and "cpu_lists" in line
    path.write_text("nodes:\n  - name: a\n    address: 192.0.2.1\n    cpus: 4\n    gpus: 1xH100\n")
    line = _fails(cli_runner, ["llama-3.1-8b", "--cluster", str(path)])
    assert "either cpus or gpus" in line


def test_local_model_is_mounted_read_only(tiny_model: Path, tmp_path: Path) -> None:
    from orchestrator.engines import build_services

    plan = build_plan(
        PlanRequest(model=str(tiny_model), cluster=cpu_cluster(tmp_path, cores=2, memory=8))
    )
    (serve,) = build_services(plan)
    mount = next(m for m in serve.mounts if m.target == "/models/tiny-model")
    assert mount.read_only and mount.source == str(tiny_model.resolve())
    assert serve.command[0] == "/models/tiny-model"


def test_bench_predicts_a_cpu_plan_at_its_own_lengths(tiny_model: Path, tmp_path: Path) -> None:
    from orchestrator.planning.performance.from_plan import predict_plan

    plan = build_plan(PlanRequest(model=str(tiny_model), cluster=cpu_cluster(tmp_path, cores=4)))
    one = predict_plan(plan, isl=256, osl=64, concurrency=1)
    four = predict_plan(plan, isl=256, osl=64, concurrency=4)
    assert one is not None and four is not None
    assert four.output_tokens_per_s > one.output_tokens_per_s > 0
    assert four.tpot_ms >= one.tpot_ms
    paced = predict_plan(plan, isl=256, osl=64, request_rate=0.5)
    assert paced is not None and paced.requests_per_s == pytest.approx(0.5)
