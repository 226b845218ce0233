"""A rehearsal through a real Slurm cluster: munged, slurmctld and two slurmd on loopback
(tests/slurm/start-slurm.sh), and the engine simulator run by the batch script on the host
(no containers): up -> ready -> a completion -> `deploy bench` -> down.

The daemons are shared machine-wide and left running; every test cancels its own job and
removes its state. Skipped with a reason when Slurm cannot run here, except in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import cli as main
from orchestrator.errors import InputError
from orchestrator.targets.slurm_runtime import SlurmCommands
from tests.conftest import ENDPOINT_OFFSETS, IN_CI, REPO_ROOT, free_port

# Also `docker`: the simulator binds host ports, as the Docker rehearsals do, so runs that leave
# those out (`-m "not docker"`) leave this out too. The endpoint port is a free one (`--port`).
pytestmark = [pytest.mark.slurm, pytest.mark.docker]
START = REPO_ROOT / "tests" / "slurm" / "start-slurm.sh"
DEADLINE_S = 120
PORT = free_port(ENDPOINT_OFFSETS)
URL = f"http://127.0.0.1:{PORT}"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI is set, so this is an error)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm_conf() -> str:
    missing = [
        name for name in ("slurmctld", "slurmd", "munged", "sbatch") if not shutil.which(name)
    ]
    if missing or not Path("/usr/sbin/slurmctld").exists():
        _unavailable(
            f"Slurm is not installed ({', '.join(missing) or 'slurmctld'}); "
            "Debian: apt-get install slurm-wlm munge"
        )
    if os.geteuid() != 0:
        _unavailable("starting slurmctld, slurmd and munged needs root")
    result = subprocess.run(
        ["bash", str(START)], capture_output=True, text=True, timeout=180, check=False
    )
    found = re.search(r"^SLURM_CONF=(\S+)$", result.stdout, re.M)
    if result.returncode != 0 or not found:
        _unavailable(f"the test Slurm cluster did not start: {result.stderr.strip()[-400:]}")
    return found.group(1)


@pytest.fixture
def slurm_env(slurm_conf: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.setenv("SLURM_CONF", slurm_conf)
    monkeypatch.setenv("DEPLOY_SIM_LOAD_SECONDS", "2")
    monkeypatch.setenv("DEPLOY_SIM_TTFT_MS", "5")
    monkeypatch.setenv("DEPLOY_SIM_TPOT_MS", "1")
    state = tmp_path / "state"
    yield state
    # Whatever a failed test left: cancel its jobs (only those this test recorded).
    for record in (state / "slurm").glob("*.json"):
        job = json.loads(record.read_text())["job_id"]
        subprocess.run(["scancel", job], check=False, capture_output=True)


def _deploy(cli_runner: Any, *args: str) -> Any:
    return cli_runner.invoke(main, list(args), catch_exceptions=False)


def _completion(url: str, model: str) -> dict[str, Any]:
    body = json.dumps({"model": model, "prompt": "Slurm says", "max_tokens": 4}).encode()
    request = urllib.request.Request(
        f"{url}/v1/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read())


def _closed(port: int) -> bool:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return True
        time.sleep(0.5)
    return False


def _steps(job: str) -> list[tuple[str, str]]:
    out = subprocess.run(
        ["squeue", "--steps", f"--jobs={job}", "--noheader", "--format=%i %N"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(tuple(line.split()) for line in out.splitlines() if line.strip())  # type: ignore[misc]


def _rehearse(cli_runner: Any, state: Path, name: str, *plan: str) -> str:
    common = ["--state-dir", str(state), "--target", "slurm"]
    result = _deploy(
        cli_runner,
        "up",
        *plan,
        "--port",
        str(PORT),
        "--name",
        name,
        "--simulate",
        "--time-limit",
        "10",
        "--timeout",
        str(DEADLINE_S),
        *common,
    )
    assert result.exit_code == 0, result.output
    ready = re.search(
        rf"^{re.escape(name)} is ready \(Slurm job (\d+)\): (http://\S+)$", result.stdout, re.M
    )
    assert ready, result.stdout
    job, url = ready.group(1), ready.group(2)
    assert url == URL

    reply = _completion(url, "qwen3-8b")
    assert reply["choices"][0]["text"] and reply["usage"]["completion_tokens"] == 4

    status = _deploy(cli_runner, "status", "--name", name, "--json", *common)
    assert status.exit_code == 0
    [row] = json.loads(status.stdout)
    assert (row["job_id"], row["state"], row["ready"], row["endpoint"]) == (
        job,
        "RUNNING",
        True,
        url,
    )

    bench = _deploy(
        cli_runner,
        "bench",
        "--url",
        url,
        "--concurrency",
        "2",
        "--requests",
        "6",
        "--warmup",
        "1",
        "--input-len",
        "16",
        "--output-len",
        "8",
        "--json",
    )
    assert bench.exit_code == 0, bench.output
    [level] = json.loads(bench.stdout)["levels"]
    assert level["completed"] == 6 and not any(level["errors"].values())

    logs = _deploy(cli_runner, "logs", "--name", name, *common)
    assert f"deploy: ready {url}" in logs.stdout.splitlines()
    return job


def _teardown(cli_runner: Any, state: Path, name: str, job: str) -> None:
    down = _deploy(
        cli_runner, "down", "--name", name, "--state-dir", str(state), "--target", "slurm"
    )
    assert down.exit_code == 0
    assert down.stdout == f"removed {name} (Slurm job cancelled, state deleted)\n"
    assert SlurmCommands().squeue(job) is None or SlurmCommands().squeue(job)[0] not in (
        "RUNNING",
        "PENDING",
    )  # type: ignore[index]
    assert _closed(PORT), "the simulator still listens after scancel"
    assert not any((state / "slurm").iterdir())


def test_single_node_through_slurm(cli_runner: Any, slurm_env: Path) -> None:
    name = "slurm-one"
    plan = ["qwen3-8b", "--gpus", "1xH100"]
    job = _rehearse(cli_runner, slurm_env, name, *plan)
    # One step per service beside the batch step (the job's prepare step has ended).
    assert [step.split(".")[1] for step, _ in _steps(job)] == ["1", "batch"]
    # `up` again with the same plan finds the running job instead of submitting another.
    again = _deploy(
        cli_runner,
        "up",
        *plan,
        "--port",
        str(PORT),
        "--name",
        name,
        "--simulate",
        "--time-limit",
        "10",
        "--state-dir",
        str(slurm_env),
        "--target",
        "slurm",
    )
    assert again.exit_code == 0
    assert again.stdout == f"{name} is ready (Slurm job {job}): {URL}\n"
    _teardown(cli_runner, slurm_env, name, job)


def test_two_ranks_are_two_job_steps_on_two_nodes(cli_runner: Any, slurm_env: Path) -> None:
    name = "slurm-two"
    job = _rehearse(
        cli_runner, slurm_env, name, "qwen3-8b", "--gpus", "1xH100", "--nodes", "2", "--pp", "2"
    )
    steps = dict(_steps(job))
    assert set(steps) == {f"{job}.1", f"{job}.2", f"{job}.batch"}
    assert {steps[f"{job}.1"], steps[f"{job}.2"]} == {"deploy-test-node1", "deploy-test-node2"}
    rank1 = _deploy(
        cli_runner,
        "logs",
        "serve-0-rank1",
        "--name",
        name,
        "--state-dir",
        str(slurm_env),
        "--target",
        "slurm",
    )
    assert rank1.exit_code == 0 and "headless" in rank1.stdout.lower()
    _teardown(cli_runner, slurm_env, name, job)


def test_a_rank_that_dies_fails_up_with_its_output(
    cli_runner: Any, slurm_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_SIM_FAULT", "exit-on-start")
    result = cli_runner.invoke(
        main,
        [
            "up",
            "qwen3-8b",
            "--gpus",
            "1xH100",
            "--port",
            str(PORT),
            "--name",
            "slurm-dies",
            "--simulate",
            "--target",
            "slurm",
            "--time-limit",
            "10",
            "--timeout",
            str(DEADLINE_S),
            "--state-dir",
            str(slurm_env),
        ],
    )
    assert result.exit_code == 1
    assert re.search(
        r"Slurm job \d+ ended before it was ready \(.*deploy: finished with status [1-9]",
        result.output,
    ), result.output
    down = _deploy(
        cli_runner,
        "down",
        "--name",
        "slurm-dies",
        "--state-dir",
        str(slurm_env),
        "--target",
        "slurm",
    )
    assert down.exit_code == 0


GOLDEN_SCRIPTS = sorted((REPO_ROOT / "tests" / "golden" / "slurm").glob("*/job.sbatch"))


@pytest.mark.parametrize("script", GOLDEN_SCRIPTS, ids=[p.parent.name for p in GOLDEN_SCRIPTS])
def test_golden_scripts_are_accepted_by_slurmctld(
    script: Path, slurm_env: Path, tmp_path: Path
) -> None:
    """The controller checks the directives (nodes, tasks, GPUs, time) without queueing."""
    result = subprocess.run(
        ["sbatch", "--test-only", str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"Job \d+ to start at .* on nodes deploy-test-node", result.stderr)


def test_slurmctld_refuses_what_the_nodes_cannot_hold(slurm_env: Path, tmp_path: Path) -> None:
    script = (REPO_ROOT / "tests" / "golden" / "slurm" / "vllm-tp8" / "job.sbatch").read_text()
    too_many = tmp_path / "job.sbatch"
    too_many.write_text(script.replace("--gpus-per-node=8", "--gpus-per-node=9"))
    result = subprocess.run(
        ["sbatch", "--test-only", str(too_many)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "Requested node configuration is not available" in result.stderr


def test_a_missing_slurm_client_is_one_line_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=r"`sbatch` is not installed here; run deploy on a Slurm login node"
    ):
        SlurmCommands(env={"PATH": str(tmp_path)}).run(["sbatch", "--version"])
