"""Golden files of the Kubernetes and Slurm targets: siblings of the compose goldens, for the
same scenarios (`tests/golden/k8s/<scenario>/`, `tests/golden/slurm/<scenario>/`).

Regenerate after an intended change with `pytest tests/targets --update-golden`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.render.conftest import SCENARIOS

from .conftest import K8S_SCENARIOS, golden_dir, render

CASES = [("k8s", engine, layout) for engine, layout in K8S_SCENARIOS] + [
    ("slurm", engine, layout) for engine, layout in SCENARIOS
]


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize(
    ("target", "engine", "layout"), CASES, ids=["-".join(case) for case in CASES]
)
def test_rendered_files_match_golden(
    target: str, engine: str, layout: str, tmp_path: Path, update_golden: bool
) -> None:
    render(target, engine, layout, tmp_path)  # type: ignore[arg-type]
    rendered = {
        name: content
        for name, content in _tree(tmp_path / target).items()  # plan.json: the compose golden's
    }
    golden = golden_dir(target, engine, layout)
    if update_golden:
        shutil.rmtree(golden, ignore_errors=True)
        shutil.copytree(tmp_path / target, golden)
    expected = _tree(golden)
    assert sorted(rendered) == sorted(expected)
    for name, content in rendered.items():
        assert content == expected[name], f"{target}/{golden.name}/{name} differs from the golden"
    assert (tmp_path / "plan.json").read_bytes() == (
        golden.parent.parent / f"{engine}-{layout}" / "plan.json"
    ).read_bytes(), "the target renders the same plan.json as compose"


SLURM_GOLDENS = sorted(Path(golden_dir("slurm", "x", "y").parent).glob("*/job.sbatch"))


@pytest.mark.parametrize("path", SLURM_GOLDENS, ids=[p.parent.name for p in SLURM_GOLDENS])
def test_golden_batch_scripts_parse_in_bash(path: Path) -> None:
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_every_scenario_has_target_goldens() -> None:
    assert len(SLURM_GOLDENS) == len(SCENARIOS)
    k8s = {p.name for p in golden_dir("k8s", "x", "y").parent.iterdir() if p.is_dir()}
    assert k8s == {f"{engine}-{layout}" for engine, layout in K8S_SCENARIOS}
