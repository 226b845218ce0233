"""The built wheel carries `profiles/` and `templates/` and plans in a fresh virtualenv."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_installs_and_plans_in_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(REPO_ROOT)],
        check=True,
        capture_output=True,
    )
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1

    import zipfile

    names = zipfile.ZipFile(wheels[0]).namelist()
    assert any(n.startswith("orchestrator/_data/profiles/models/") for n in names)
    assert any(n.startswith("orchestrator/_data/templates/") for n in names)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheels[0])],
        check=True,
        capture_output=True,
    )
    # Run from a directory without the source tree so only the installed copy can be used.
    result = subprocess.run(
        [str(env_dir / "bin" / "deploy"), "plan", "qwen3-8b", "--gpus", "1xH100", "--json"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    plan = json.loads(result.stdout)
    assert plan["model"]["id"] == "Qwen/Qwen3-8B"
    assert plan["fits"] is True
    assert plan["parallelism"]["tp"] == 1
