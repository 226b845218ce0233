"""Each start-failure class: the simulator prints the engine's real message, the supervisor's
classifier names the cause in one line, and memory causes come with the planner's re-plan."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.execution import replan_for
from orchestrator.planning.build import build_plan
from orchestrator.planning.request import PlanRequest
from orchestrator.runtime.diagnose import Explanation, classify
from orchestrator.runtime.supervisor import ServiceGaveUp
from orchestrator.sim.settings import Faults, SimConfigError

VLLM = ["vllm", "serve", "Qwen/Qwen3-8B", "--host", "127.0.0.1", "--port", "0"]
SGLANG = ["python3", "-m", "sglang.launch_server", "--model-path", "Qwen/Qwen3-8B", "--port", "0"]

# cause -> (the classifier's key, the words of its one line)
EXPECTED = {
    "cuda-oom": ("cuda-oom", "CUDA ran out of GPU memory while loading or profiling the model"),
    "kv-cache": ("kv-cache", "the KV cache cannot hold one request of the planned context"),
    "gpu-taken": ("gpu-taken", "other processes hold part of the GPU memory"),
    "nccl": ("nccl", "NCCL/Gloo failed to connect the ranks"),
    "dist-timeout": ("dist-timeout", "the ranks of a multi-node instance did not meet in time"),
    "driver": ("driver", "the NVIDIA driver is too old for the CUDA version"),
    "hub-401": ("hub-401", "Hugging Face refused the download (401"),
    "hub-404": ("hub-404", "the model repository does not exist on Hugging Face (404)"),
    "architecture": ("architecture", "this engine version cannot load the model's architecture"),
    "port-in-use": ("port", "a port the engine listens on is already in use"),
}


def run_failing(spawn: Any, argv: list[str], cause: str, **env: str) -> list[str]:
    process = spawn(
        argv, {"DEPLOY_SIM_LOAD_SECONDS": "0", "DEPLOY_SIM_FAULT": f"fail={cause}", **env}
    )
    process.wait(timeout=60)
    assert process.returncode == 1
    return [line for line in str(process.stdout.read()).splitlines() if line.strip()]


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
@pytest.mark.parametrize("cause", sorted(EXPECTED))
def test_each_start_failure_is_named_in_one_line(spawn: Any, engine: str, cause: str) -> None:
    argv = (VLLM if engine == "vllm" else SGLANG) + (
        ["--max-model-len" if engine == "vllm" else "--context-length", "131072"]
    )
    lines = run_failing(spawn, argv, cause, DEPLOY_SIM_KV_TOKENS="40960")
    found = classify(lines)
    assert found is not None, lines
    key, words = EXPECTED[cause]
    assert found[0].key == key
    assert found[0].cause.startswith(words)
    assert found[1] in lines[-1] or any(found[1] in line for line in lines)


def test_kv_cache_fault_only_fires_above_the_simulated_capacity(spawn: Any, client: Any) -> None:
    port = client.free_port()
    argv = ["vllm", "serve", "Qwen/Qwen3-8B", "--host", "127.0.0.1", "--port", str(port)]
    process = spawn(
        [*argv, "--max-model-len", "32768"],
        {
            "DEPLOY_SIM_LOAD_SECONDS": "0",
            "DEPLOY_SIM_FAULT": "fail=kv-cache",
            "DEPLOY_SIM_KV_TOKENS": "40960",
        },
    )
    url = f"http://127.0.0.1:{port}"
    # The context fits the KV cache, so the engine starts and serves, as the real one would.
    assert client.wait_for(lambda: not client.connection_refused(url), timeout=60)
    assert client.request(url, "/health").status == 200
    assert process.poll() is None


def test_unknown_start_failure_is_refused() -> None:
    with pytest.raises(SimConfigError, match="unknown start failure 'melt'; use fail= one of"):
        Faults.parse("fail=melt")


def _explain(lines: list[str], request: PlanRequest) -> Explanation:
    found = classify(lines)
    assert found is not None
    plan = build_plan(request)
    return Explanation(
        service="serve-0",
        cause=found[0],
        evidence=found[1],
        replan=replan_for(request, plan)(found[0].key, lines),
    )


def test_vllm_kv_cache_shortfall_is_replanned_to_the_context_vllm_estimates(spawn: Any) -> None:
    request = PlanRequest(model="qwen3-8b", gpus="1xH100", context=40960)
    plan = build_plan(request)
    argv = [*VLLM, "--max-model-len", str(plan.memory.context)]
    lines = run_failing(spawn, argv, "kv-cache", DEPLOY_SIM_KV_TOKENS="20000")
    explained = _explain(lines, request)
    assert explained.replan is not None
    assert explained.replan.knobs == "--context 19456 (was 40960)"
    assert explained.replan.plan.memory.context == 19456
    assert explained.line() == (
        "cause: the KV cache cannot hold one request of the planned context length; fix: lower "
        "--context or raise the memory fraction (--gpu-memory-utilization); re-plan: --context "
        "19456 (was 40960) (`deploy up ... --replan` applies it)"
    )
    error = explained.as_error(ServiceGaveUp("x", "y", service="serve-0", log_tail=lines))
    assert str(error) == (
        "serve-0 did not start: the KV cache cannot hold one request of the planned context "
        "length; rerun with --context 19456 (was 40960), or add --replan"
    )
    assert error.exit_code == 1


def test_cuda_oom_while_loading_is_replanned_onto_more_gpus(spawn: Any) -> None:
    # Throughput: two TP1 replicas, so a loading OOM has room to re-plan onto TP2.
    request = PlanRequest(model="qwen3-8b", gpus="2xH100", goal="throughput")
    plan = build_plan(request)
    assert plan.parallelism.tp == 1
    lines = run_failing(spawn, VLLM, "cuda-oom")
    explained = _explain(lines, request)
    assert explained.replan is not None
    assert explained.replan.knobs == "--tp 2 (was 1)"
    assert explained.replan.plan.parallelism.tp == 2


def test_gpu_partly_taken_is_replanned_to_the_free_fraction(spawn: Any) -> None:
    request = PlanRequest(model="qwen3-8b", gpus="1xH100")
    lines = run_failing(spawn, VLLM, "gpu-taken")
    explained = _explain(lines, request)
    assert explained.replan is not None
    # 38.2 of 79.19 GiB free: plan for 0.48 - 0.02 of the GPU.
    assert explained.replan.knobs.startswith("--gpu-memory-utilization 0.46 (was ")


@pytest.mark.parametrize("cause", ["hub-401", "architecture", "driver", "nccl"])
def test_causes_that_memory_cannot_fix_get_no_replan(spawn: Any, cause: str) -> None:
    lines = run_failing(spawn, VLLM, cause)
    explained = _explain(lines, PlanRequest(model="qwen3-8b", gpus="1xH100"))
    assert explained.replan is None
    assert "re-plan" not in explained.line()
