"""`deploy bench` on a deployment deploy planned prints the plan's prediction per level."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.planning.build import build_plan
from orchestrator.planning.request import PlanRequest
from orchestrator.state import DeploymentState, StateStore

SMALL = ["--input-len", "4", "--output-len", "4", "--requests", "6"]


def _save_planned(tmp_path: Path, url: str) -> None:
    plan = build_plan(PlanRequest(model="llama-3.1-8b", gpus="1xH100"))
    StateStore(tmp_path).save(
        DeploymentState(
            name="demo", specs=[], nodes=[], endpoint_url=url, plan=plan.model_dump(mode="json")
        )
    )


def test_the_prediction_is_printed_beside_each_level(make_server: Any, tmp_path: Path) -> None:
    server = make_server(ttft_ms=5, tpot_ms=1)
    _save_planned(tmp_path, server.url)
    result = CliRunner().invoke(
        cli, ["bench", "demo", "--state-dir", str(tmp_path), "--concurrency", "1,2", *SMALL]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = lines.index("predicted (plan) vs measured, medians:")
    assert [line.split(":")[0].strip() for line in lines[start + 1 : start + 3]] == ["1", "2"]
    assert all(" vs " in line and "(bound " in line for line in lines[start + 1 : start + 3])


def test_the_json_carries_the_prediction_per_level(make_server: Any, tmp_path: Path) -> None:
    server = make_server(ttft_ms=5, tpot_ms=1)
    _save_planned(tmp_path, server.url)
    result = CliRunner().invoke(
        cli, ["bench", "demo", "--state-dir", str(tmp_path), "--concurrency", "1", "--json", *SMALL]
    )
    assert result.exit_code == 0, result.output
    [predicted] = json.loads(result.stdout)["predicted"]
    assert predicted["tpot_ms"] > 0 and predicted["output_tokens_per_s"] > 0


def test_a_plain_url_has_no_prediction(make_server: Any) -> None:
    server = make_server(ttft_ms=5, tpot_ms=1)
    result = CliRunner().invoke(
        cli, ["bench", "--url", server.url, "--concurrency", "1", "--json", *SMALL]
    )
    assert result.exit_code == 0, result.output
    assert "predicted" not in json.loads(result.stdout)
