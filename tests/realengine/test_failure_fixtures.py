"""The supervisor's start-failure classification on the real engine's own lines.

The fixtures under fixtures/failures/ are the output of the real vLLM CPU engine (image
deploy-vllm-cpu:0.32.0) for each bad input, recorded by scripts/record_engine_failures.py (never
written by hand). Each must be named by its one-line cause and fix, from the last lines the
supervisor reads of a failed service. No Docker needed: the lines are files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.runtime.diagnose import classify
from orchestrator.runtime.supervisor import SupervisorOptions

FIXTURES = Path(__file__).parent / "fixtures" / "failures"
GENERIC = "Engine core initialization failed"

# case -> (the classifier's key, words its one-line cause starts with)
EXPECTED = {
    "unknown-flag": ("engine-flag", "the engine refused a command-line flag"),
    "missing-model-dir": ("model-missing", "the engine found no model at the path"),
    "unknown-architecture": ("architecture", "this engine version cannot load the model's"),
    "tp-not-dividing-heads": ("tp-heads", "the tensor parallel size does not divide"),
    "context-above-model": ("context-too-long", "the context asked for is longer"),
    "kv-cache-too-small": ("kv-cache", "the KV cache space (VLLM_CPU_KVCACHE_SPACE) cannot"),
    "kv-cache-above-memory": ("cpu-kv-memory", "the KV cache space asked of the CPU engine"),
    "port-in-use": ("port", "a port the engine listens on is already in use"),
    "numa-bind": ("cpu-bind", "the engine's threads are bound to CPUs"),
    "small-shm": ("shm", "the container's /dev/shm is too small"),
    "engine-death": ("engine-died", "the engine core process died while serving"),
}
# The engine that died while serving: vLLM's API server exits 0 after its engine core died.
EXIT_ZERO = {"engine-death"}


def recorded(case: str) -> tuple[list[str], dict[str, object]]:
    log, meta = FIXTURES / f"{case}.log", FIXTURES / f"{case}.json"
    assert log.is_file() and meta.is_file(), (
        f"fixture {case} is missing; record it with scripts/record_engine_failures.py {case}"
    )
    return log.read_text().splitlines(), json.loads(meta.read_text())


def test_every_recorded_case_is_expected_here_and_came_from_the_recorder() -> None:
    cases = sorted(path.stem for path in FIXTURES.glob("*.log"))
    assert set(EXPECTED) <= set(cases), set(EXPECTED) - set(cases)
    for case in cases:
        _, meta = recorded(case)
        assert meta["recorded_by"] == "scripts/record_engine_failures.py"
        assert meta["image"] == "deploy-vllm-cpu:0.32.0"
        assert meta["case"] == case


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_real_start_failure_is_named_in_one_line(case: str) -> None:
    lines, meta = recorded(case)
    # What the supervisor reads of a failed service: its last lines.
    tail = lines[-SupervisorOptions().log_tail :]
    found = classify(tail)
    assert found is not None, f"{case}: no cause found in:\n" + "\n".join(tail[-30:])
    cause, evidence = found
    key, words = EXPECTED[case]
    assert cause.key == key, (case, cause.key, evidence)
    assert cause.cause.startswith(words), cause.cause
    assert "\n" not in cause.cause and "\n" not in cause.fix
    # The evidence is a real line of the log, and never the generic last words of a failed
    # engine core: the cause is what came before them.
    assert any(evidence in line for line in tail)
    assert GENERIC not in evidence
    if case in EXIT_ZERO:
        assert meta["exit_code"] == 0
    else:
        assert meta["exit_code"] != 0


def test_an_unknown_flag_exits_2_before_anything_starts() -> None:
    lines, meta = recorded("unknown-flag")
    assert meta["exit_code"] == 2
    assert not any("Starting to load model" in line for line in lines)


def test_a_cpu_kv_failure_is_re_planned_with_a_shorter_context_not_a_gpu_fraction(
    tmp_path: Path,
) -> None:
    from orchestrator.planning.build import build_plan
    from orchestrator.planning.replan import replan
    from orchestrator.planning.request import PlanRequest

    lines, meta = recorded("kv-cache-too-small")
    shape = meta["model"]
    assert isinstance(shape, dict)
    model = tmp_path / "tiny"
    model.mkdir()
    hidden, heads = int(shape["hidden"]), int(shape["heads"])
    # The recorded model's config (as deploy-tiny-model writes it), with the default context.
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": hidden, "intermediate_size": 2 * hidden,
        "num_hidden_layers": shape["layers"], "num_attention_heads": heads,
        "num_key_value_heads": shape["kv_heads"], "head_dim": hidden // heads,
        "vocab_size": shape["vocab"], "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
        "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    }  # fmt: skip
    (model / "config.json").write_text(json.dumps(config))
    request = PlanRequest(model=str(model), cpus="2")
    plan = build_plan(request)
    assert plan.cpu is not None
    found = classify(lines)
    assert found is not None
    fitted = replan(found[0].key, lines, request, plan)
    assert fitted is not None
    _, knobs = fitted
    assert knobs.startswith("--context ")
    assert "gpu-memory-utilization" not in knobs
