"""Every rendered shell script passes shellcheck (warnings and errors): each node's launch.sh
and the Slurm batch script in each runtime, for every golden scenario and for the bundled
two-node InfiniBand cluster (NCCL_IB_HCA's `==`, quoted)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.engines import build_services
from orchestrator.targets.compose.render import render_deployment
from orchestrator.targets.render import render_target
from orchestrator.targets.settings import TargetSettings
from tests.conftest import IN_CI, REPO_ROOT
from tests.render.conftest import SCENARIOS, scenario


def _shellcheck(paths: list[Path]) -> str:
    if shutil.which("shellcheck") is None:
        if IN_CI:
            pytest.fail("shellcheck is not installed (CI is set, so this is an error)")
        pytest.skip("shellcheck is not installed (Debian: apt-get install shellcheck)")
    result = subprocess.run(
        ["shellcheck", "--severity=warning", "--format=gcc", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.stdout + result.stderr


def test_every_golden_scenarios_scripts_pass_shellcheck(tmp_path: Path) -> None:
    scripts: list[Path] = []
    for engine, layout in SCENARIOS:
        plan = scenario(engine, layout)
        services = build_services(plan)
        out = tmp_path / f"{engine}-{layout}"
        render_deployment(plan, services, out / "compose")
        scripts += sorted((out / "compose").glob("*/launch.sh"))
        for runtime in ("pyxis", "apptainer", "bare-metal"):
            settings = TargetSettings.model_validate({"slurm": {"runtime": runtime}})
            render_target("slurm", plan, services, out / runtime, settings)
            scripts.append(out / runtime / "slurm" / "job.sbatch")
    assert len(scripts) > 3 * len(SCENARIOS)
    assert _shellcheck(scripts) == ""


@pytest.mark.parametrize("target", ["compose", "slurm"])
def test_the_infiniband_cluster_example_passes_shellcheck(tmp_path: Path, target: str) -> None:
    cluster = REPO_ROOT / "profiles" / "clusters" / "two-node-h100-ib.yaml"
    out = tmp_path / "out"
    args = ["render", "deepseek-r1", "--nodes", "2", "--cluster", str(cluster)]
    result = CliRunner().invoke(cli, [*args, "--target", target, "--out", str(out)])
    assert result.exit_code == 0, result.output
    scripts = sorted(out.glob("*/launch.sh")) + sorted(out.glob("slurm/job.sbatch"))
    text = "".join(path.read_text() for path in scripts)
    assert "'NCCL_IB_HCA==mlx5_0," in text or "NCCL_IB_HCA='=mlx5_0," in text
    assert _shellcheck(scripts) == ""
