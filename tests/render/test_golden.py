"""Golden files: every layout × engine renders exactly the committed files.

Regenerate after an intended change with `pytest tests/render --update-golden` and review
the diff like any other code change.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.engines import build_services
from orchestrator.targets.compose.render import render_deployment

from .conftest import GOLDEN_DIR, SCENARIOS, scenario


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize(
    ("engine", "layout"), SCENARIOS, ids=[f"{engine}-{layout}" for engine, layout in SCENARIOS]
)
def test_rendered_files_match_golden(
    engine: str, layout: str, tmp_path: Path, update_golden: bool
) -> None:
    plan = scenario(engine, layout)
    written = render_deployment(plan, build_services(plan), tmp_path)
    assert written, "nothing was rendered"
    golden = GOLDEN_DIR / f"{engine}-{layout}"
    if update_golden:
        shutil.rmtree(golden, ignore_errors=True)
        shutil.copytree(tmp_path, golden)
    rendered, expected = _tree(tmp_path), _tree(golden)
    assert sorted(rendered) == sorted(expected)
    for name, content in rendered.items():
        assert content == expected[name], f"{golden.name}/{name} differs from the golden file"


@pytest.mark.parametrize(("engine", "layout"), SCENARIOS[:3])
def test_rendering_twice_gives_identical_bytes(engine: str, layout: str, tmp_path: Path) -> None:
    plan = scenario(engine, layout)
    render_deployment(plan, build_services(plan), tmp_path / "one")
    render_deployment(plan, build_services(plan), tmp_path / "two")
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")


def test_every_golden_scenario_has_a_directory() -> None:
    names = {f"{engine}-{layout}" for engine, layout in SCENARIOS}
    assert names <= {path.name for path in GOLDEN_DIR.iterdir() if path.is_dir()}
