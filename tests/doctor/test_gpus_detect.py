"""Cluster files may say `gpus: detect`: the planner uses the node's cached inventory (from
remote detection), and detects through the node's endpoint when there is none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.doctor.inventory_cache import inventory_path, load, store
from orchestrator.doctor.remote_detect import inventory_from_recording
from orchestrator.errors import HardwareError
from orchestrator.hardware.cluster_file import load_cluster


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _cluster(tmp_path: Path, docker: str) -> Path:
    path = tmp_path / "detect.yaml"
    path.write_text(
        f"fabric: infiniband\nnodes:\n  - name: h100-a\n    address: 192.0.2.10\n"
        f"    docker: '{docker}'\n    gpus: detect\n",
        encoding="utf-8",
    )
    return path


def test_a_cached_inventory_is_planned_on(cache_home: Path, recording: Any, tmp_path: Path) -> None:
    docker = f"unix://{tmp_path}/absent.sock"
    found = inventory_from_recording(recording("h100-sxm-8-nvswitch"))
    written = store("h100-a", docker, found)
    assert written == inventory_path("h100-a", docker)
    assert written.is_relative_to(cache_home / "deploy" / "inventories")
    assert load("h100-a", docker) == found
    node = load_cluster(_cluster(tmp_path, docker)).nodes[0]
    assert node.gpu.name == "H100-80GB-SXM"
    assert len(node.gpus) == 8 and node.interconnect == "nvswitch"


def test_without_a_cache_an_unreachable_node_is_one_line(cache_home: Path, tmp_path: Path) -> None:
    path = _cluster(tmp_path, f"unix://{tmp_path}/absent.sock")
    with pytest.raises(HardwareError) as caught:
        load_cluster(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:6: nodes[0].gpus: cannot reach the Docker daemon at unix://")
    assert "\n" not in message
