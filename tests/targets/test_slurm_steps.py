"""Every shape that puts two job steps on one node starts on the project's real Slurm cluster
(tests/slurm/start-slurm.sh): replicas beside their nginx, prefill beside decode and their
router. Each step takes only its share of the node (`--exact`) and the CPU-only fronts share
(`--overlap`); without that the node's second step waits forever ("Requested nodes are busy").

The engines are the simulator run on the host (`--simulate`, bare metal), on free ports: the
rendered script's ports are swapped for ports the OS hands out, so nothing else on the machine
is disturbed.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from orchestrator.engines import build_services
from orchestrator.engines.common import endpoint_port
from orchestrator.targets.compose.render import compose_project
from orchestrator.targets.instances import exposed_ports
from orchestrator.targets.settings import SlurmSettings
from orchestrator.targets.slurm import READY_MARK, batch_script
from orchestrator.targets.slurm_runtime import ACTIVE, SlurmCommands
from tests.conftest import free_ports
from tests.render.conftest import scenario

from . import test_slurm_rehearsal as rehearsal

# The real cluster's fixtures (started once, shared machine-wide).
slurm_conf = rehearsal.slurm_conf
slurm_env = rehearsal.slurm_env

pytestmark = [pytest.mark.slurm]
DEADLINE_S = 150
SHAPES = [
    ("vllm", "replicas"),
    ("sglang", "replicas"),
    ("vllm", "pd1node"),
    ("sglang", "pd1node"),
    ("vllm", "pd2node"),
]


def _script(engine: str, layout: str) -> tuple[str, list[str], int, str]:
    """The simulated deployment's batch script on free ports, its service names, its endpoint."""
    plan = scenario(engine, layout, name=f"steps-{engine}-{layout}")
    services = build_services(plan, simulate=True)
    ports = {endpoint_port(plan)}
    for spec in services:
        ports.update(exposed_ports(spec))
        ports.update(binding.host for binding in spec.ports)
    mapping = dict(zip(sorted(ports), free_ports(len(ports)), strict=True))
    text = batch_script(
        plan, services, SlurmSettings(time_limit="10"), compose_project(plan), simulate=True
    )
    pattern = re.compile(r"(?<![\d.])(" + "|".join(map(str, mapping)) + r")(?!\d)")
    text = pattern.sub(lambda match: str(mapping[int(match.group(1))]), text)
    return text, [spec.name for spec in services], mapping[endpoint_port(plan)], plan.model.name


def _steps(job: str) -> dict[str, str]:
    out = subprocess.run(
        ["squeue", "--steps", f"--jobs={job}", "--noheader", "--format=%j %N"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def _wait_output(output: Path, mark: str, job: str, commands: SlurmCommands) -> str:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        text = output.read_text(errors="replace") if output.exists() else ""
        if mark in text:
            return text
        queued = commands.squeue(job)
        if queued is None or queued[0] not in ACTIVE:
            pytest.fail(f"job {job} ended before {mark!r}:\n{text}")
        time.sleep(0.5)
    pending = subprocess.run(
        ["squeue", "--steps", f"--jobs={job}"], capture_output=True, text=True, check=False
    ).stdout
    pytest.fail(f"no {mark!r} within {DEADLINE_S} s; steps:\n{pending}\noutput:\n{text}")


@pytest.mark.parametrize(("engine", "layout"), SHAPES, ids=["-".join(s) for s in SHAPES])
def test_two_steps_on_a_node_both_start(
    engine: str,
    layout: str,
    slurm_env: Path,
    tmp_path: Path,
) -> None:
    import sys

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    text, names, port, model = _script(engine, layout)
    script = run_dir / "job.sbatch"
    script.write_text(text)
    commands = SlurmCommands()
    env = {"DEPLOY_RUN_DIR": str(run_dir), "DEPLOY_SIM_PYTHON": sys.executable}
    job = commands.sbatch(script, run_dir / "job-%j.out", run_dir, env)
    (slurm_env / "slurm").mkdir(parents=True, exist_ok=True)
    (slurm_env / "slurm" / f"{job}.json").write_text(json.dumps({"job_id": job}))
    try:
        output = _wait_output(run_dir / f"job-{job}.out", READY_MARK, job, commands)
        steps = _steps(job)
        # Every service is a running step of its own, beside the others on its node.
        assert set(names) <= set(steps), (steps, output)
        for name in names:
            started = f"deploy: started {name} (step pid"
            assert started in output
            log = run_dir / f"{job}.{name}.log"
            assert log.is_file() and log.stat().st_size > 0, f"{name} wrote nothing"
        assert "deploy: nodes prepared" in output
        body = json.dumps({"model": model, "prompt": "steps", "max_tokens": 2}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
    finally:
        commands.scancel(job)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            queued = commands.squeue(job)
            if queued is None or queued[0] not in ACTIVE:
                break
            time.sleep(0.5)
