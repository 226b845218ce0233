"""Remote detection: the recorder travels to the node as a self-sufficient archive, and the
recording it sends back becomes the node's inventory, compared with the cluster file."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from orchestrator.doctor.remote_detect import (
    ROOT_IN_CONTAINER,
    differences,
    inventory_from_recording,
    recorder_archive,
)
from orchestrator.hardware.cluster_file import load_cluster


def test_the_recorder_archive_imports_on_its_own(tmp_path: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(recorder_archive())) as tar:
        tar.extractall(tmp_path, filter="data")
    root = tmp_path / ROOT_IN_CONTAINER.strip("/")
    code = (
        f"import sys; sys.path.insert(0, {str(root)!r});"
        "import orchestrator.hardware.recording as r;"
        "print(r.__file__);"
        "print(sorted(m for m in sys.modules if m.startswith('orchestrator')))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    path, modules = result.stdout.splitlines()
    assert path.startswith(str(root))
    assert (
        "orchestrator.hardware.gpus" not in modules and "orchestrator.planning.build" not in modules
    )


def test_a_recording_becomes_the_inventory_and_is_compared(
    recording: Any, two_node_ib: Path
) -> None:
    found = inventory_from_recording(recording("broken-ib-port-down"))
    assert len(found.gpus) == 8 and found.interconnect == "nvswitch"
    declared = load_cluster(two_node_ib).nodes[1]
    assert differences(declared, found) == ["RDMA devices mlx5_3 declared but not active"]
    healthy = recording("h100-sxm-8-nvswitch")
    assert differences(declared, inventory_from_recording(healthy)) == []
    l40s = inventory_from_recording(recording("l40s-2"))
    assert differences(declared, l40s)[:2] == [
        "2 GPUs found, 8 declared",
        "GPUs are L40S-48GB, H100-80GB-SXM declared",
    ]
