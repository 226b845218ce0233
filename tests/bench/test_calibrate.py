"""`deploy calibrate`: factors learned from real bench runs, stored atomically, used and cited.

A loopback OpenAI server answers at a known TTFT and TPOT; `deploy bench` measures it as the
deployment the plan describes; `deploy calibrate` learns measured/predicted; the next plan on
that GPU and engine version predicts what was measured and says where the factors came from.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.planning.build import build_plan
from orchestrator.planning.calibration import Calibration, calibration_for, scale_forecast
from orchestrator.planning.calibration.learn import factors_from_runs
from orchestrator.planning.calibration.store import load_calibrations, read_document
from orchestrator.planning.request import PlanRequest
from orchestrator.state import DeploymentState, StateStore

REQUEST = PlanRequest(model="llama-3.1-8b", gpus="1xH100", concurrency=1, isl=64, osl=32)
BENCH = ["--input-len", "64", "--output-len", "32", "--requests", "8", "--concurrency", "1"]


@pytest.fixture
def calibration_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state" / "calibration.json"
    monkeypatch.setenv("DEPLOY_CALIBRATION", str(path))
    load_calibrations.cache_clear()
    yield path
    load_calibrations.cache_clear()


def _bench_run(make_server: Any, tmp_path: Path, name: str, factor_tpot: float) -> Path:
    """Bench a server that decodes `factor_tpot` times the plan's predicted TPOT."""
    plan = build_plan(REQUEST)
    assert plan.prediction is not None
    assert not [r for r in plan.rationale if r.decision == "prediction"]
    server = make_server(
        ttft_ms=plan.prediction.ttft_ms * 2.0, tpot_ms=plan.prediction.tpot_ms * factor_tpot
    )
    state = tmp_path / f"state-{name}"
    StateStore(state).save(
        DeploymentState(
            name="demo",
            specs=[],
            nodes=[],
            endpoint_url=server.url,
            plan=plan.model_dump(mode="json"),
        )
    )
    out = tmp_path / f"bench-{name}"
    result = CliRunner().invoke(
        cli, ["bench", "demo", "--state-dir", str(state), "--out", str(out), *BENCH]
    )
    assert result.exit_code == 0, result.output
    document = json.loads((out / "result.json").read_text())
    assert document["planned"]["gpu"] == "H100-80GB-SXM"
    assert document["planned"]["engine_version"] == plan.engine.version
    return out


def test_calibrate_learns_from_bench_and_the_next_plan_uses_and_cites_it(
    make_server: Any, tmp_path: Path, calibration_file: Path
) -> None:
    before = build_plan(REQUEST)
    assert before.prediction is not None
    runs = [_bench_run(make_server, tmp_path, str(i), 0.5) for i in range(3)]
    result = CliRunner().invoke(cli, ["calibrate", *map(str, runs)])
    assert result.exit_code == 0, result.output
    assert "H100-80GB-SXM, vllm" in result.output and "3 run(s)" in result.output
    stored = read_document(calibration_file)
    assert len(stored["runs"]) == 3
    assert not [p for p in calibration_file.parent.iterdir() if p.name.startswith(".")]

    [learned] = load_calibrations()
    # Measured decode at half the prediction, prefill at twice (the server's own timing).
    assert 0.4 < learned.decode < 0.65, learned
    assert 1.6 < learned.prefill < 2.6, learned
    after = build_plan(REQUEST)
    assert after.prediction is not None
    assert after.prediction.tpot_ms == pytest.approx(before.prediction.tpot_ms * learned.decode)
    assert after.prediction.ttft_ms == pytest.approx(before.prediction.ttft_ms * learned.prefill)
    [reason] = [r for r in after.rationale if r.decision == "prediction"]
    assert reason.choice == "calibrated"
    assert reason.why.startswith(
        f"calibrated on 3 runs on cluster local, {date.today().isoformat()}"
    )
    # Filing the same runs again changes nothing; another engine version is not calibrated.
    again = CliRunner().invoke(cli, ["calibrate", *map(str, runs)])
    assert again.exit_code == 0 and len(read_document(calibration_file)["runs"]) == 3
    assert calibration_for("H100-80GB-SXM", "vllm", "0.0.1") is None


def test_plans_read_no_calibration_file_unless_it_exists(calibration_file: Path) -> None:
    assert not calibration_file.exists()
    plan = build_plan(REQUEST)
    assert plan.prediction is not None
    assert not [r for r in plan.rationale if r.decision == "prediction"]
    assert not calibration_file.parent.exists()


def test_a_result_without_a_plan_is_refused_in_one_line(
    make_server: Any, tmp_path: Path, calibration_file: Path
) -> None:
    server = make_server(ttft_ms=5, tpot_ms=1)
    out = tmp_path / "plain"
    bench = CliRunner().invoke(cli, ["bench", "--url", server.url, "--out", str(out), *BENCH])
    assert bench.exit_code == 0, bench.output
    result = CliRunner().invoke(cli, ["calibrate", str(out)])
    assert result.exit_code == 2
    assert "no prediction to compare with" in result.output
    assert not calibration_file.exists()


def test_a_corrupt_calibration_file_is_named_not_ignored(calibration_file: Path) -> None:
    calibration_file.parent.mkdir(parents=True)
    calibration_file.write_text("{not json")
    result = CliRunner().invoke(cli, ["calibrate"])
    assert result.exit_code == 2 and str(calibration_file) in result.output


def test_communication_is_learned_from_single_and_multi_gpu_runs() -> None:
    def run(gpus: int, decode: float) -> dict[str, Any]:
        return {
            "id": f"{gpus}-{decode}",
            "date": "2026-12-06",
            "gpu": "H100-80GB-SXM",
            "engine": "vllm",
            "engine_version": "0.33.0",
            "cluster": "lab",
            "gpus_per_instance": gpus,
            "levels": 4,
            "log_decode": __import__("math").log(decode),
            "log_prefill": 0.0,
        }

    [single_only] = factors_from_runs([run(1, 0.8)])
    assert single_only.communication == 1.0 and single_only.decode == pytest.approx(0.8)
    [both] = factors_from_runs([run(1, 0.8), run(4, 1.2)])
    assert both.decode == pytest.approx(0.8) and both.communication == pytest.approx(1.5)


def test_the_hook_scales_times_and_throughput_together() -> None:
    from orchestrator.planning.performance.serving import Forecast

    base = Forecast(
        ttft_ms=100.0,
        tpot_ms=10.0,
        output_tokens_per_s=1000.0,
        input_tokens_per_s=2000.0,
        output_tokens_per_s_per_gpu=500.0,
        requests_per_s=4.0,
        max_concurrency=64,
        batch=10.0,
        bound="memory-bandwidth",
    )
    cal = Calibration(gpu="g", engine="vllm", engine_version="1", prefill=1.5, decode=0.5)
    scaled = scale_forecast(base, cal)
    assert (scaled.ttft_ms, scaled.tpot_ms) == (150.0, 5.0)
    assert scaled.output_tokens_per_s == 2000.0 and scaled.requests_per_s == 8.0
    assert scale_forecast(base, None) is base


def test_deploy_plan_stays_fast_with_a_calibration(calibration_file: Path) -> None:
    # The file is small; reading it must not bring a heavy import into `deploy plan`.
    import subprocess
    import sys

    calibration_file.parent.mkdir(parents=True)
    calibration_file.write_text(json.dumps({"schema_version": 1, "runs": []}))
    env = {**os.environ, "DEPLOY_CALIBRATION": str(calibration_file)}
    code = (
        "import sys, orchestrator.cli;"
        "from orchestrator.planning.calibration import calibration_for;"
        "calibration_for('H100-80GB-SXM', 'vllm', '0.33.0');"
        "print(sorted(m for m in ('numpy', 'pandas', 'transformers', 'torch') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
