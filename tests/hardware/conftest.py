"""Recorded topologies and the helpers that run the real detection code against them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.hardware.detect import detect_node
from orchestrator.hardware.inventory import NodeInventory
from orchestrator.hardware.replay.nvml import FakeNvml
from orchestrator.hardware.replay.sysfs import write_sysfs

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOPOLOGIES = sorted(
    path.stem for path in FIXTURES.glob("*.json") if not path.stem.startswith("real-")
)


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def detect_recorded(tmp_path: Path) -> Callable[[str], NodeInventory]:
    """Detect a recorded node: FakeNvml for NVML, its sysfs tree written under tmp_path."""

    def run(name: str) -> NodeInventory:
        fake = FakeNvml.from_file(FIXTURES / f"{name}.json")
        paths = write_sysfs(fake.topology.get("sysfs", {}), tmp_path / name)
        return detect_node(fake, paths)

    return run
