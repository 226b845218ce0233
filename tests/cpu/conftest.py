"""CPU-node test helpers: recorded /proc and /sys trees, and cluster files for CPU nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.hardware.sysfs import SystemPaths
from tests.conftest import write_tiny_model

DATA = Path(__file__).resolve().parent / "data"


def write_tree(name: str, root: Path) -> SystemPaths:
    """Materialize the recorded machine `name` (data/<name>.json) under `root`."""
    recorded = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    for relative, text in recorded["files"].items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return SystemPaths(sys=root / "sys", proc=root / "proc")


def cpu_cluster(
    tmp_path: Path, *, nodes: int = 1, cores: int = 8, numa: int = 1, memory: int = 64
) -> Path:
    """A cluster file of identical CPU nodes with stated facts (nothing from this machine)."""
    lines = [
        "name: cpu-test",
        "defaults:",
        "  cpus:",
        f"    cores: {cores}",
        f"    numa_nodes: {numa}",
        f"    memory_gib: {memory}",
        "    memory_bandwidth_gbs: 100",
        "    bf16_tflops: 4",
        "nodes:",
    ]
    for index in range(nodes):
        lines += [
            f"  - name: cpu{index + 1}",
            f"    address: 192.0.2.{40 + index}",
            "    docker: unix:///var/run/docker.sock"
            if index == 0
            else f"    docker: ssh://ops@192.0.2.{40 + index}",
        ]
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"cpu-{nodes}x{cores}c{numa}n.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A Llama-shaped model directory as the engine image's `deploy-tiny-model` writes it
    (defaults: 2 layers, hidden 256, 4 heads, 2 KV heads, head_dim 64, BF16)."""
    return write_tiny_model(tmp_path / "tiny-model")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
