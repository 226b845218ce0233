"""NVML detection on every node of a cluster, through each node's Docker endpoint.

The same per-node container the doctor uses runs `deploy detect --record`'s recorder
(`orchestrator.hardware.recording`) with every GPU of the node, on the host network (so
/sys/class/net is the node's); the recording comes back as JSON and is replayed here through
the NVML stand-in and a materialized /sys, exactly as `deploy detect --replay` does. The
recorder's modules travel into the container as a tar archive: engine images carry Python,
pydantic and pynvml, but not `deploy`.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.doctor.containers import LABEL_DOCTOR
from orchestrator.errors import DeployError, HardwareError

if TYPE_CHECKING:
    from orchestrator.docker.endpoints import Endpoints
    from orchestrator.hardware.inventory import NodeInventory
    from orchestrator.hardware.model import Cluster, Node

PACKAGE = Path(__file__).resolve().parent.parent
# What `record_topology` imports, relative to the package.
RECORDER_MODULES = (
    "__init__.py",
    "errors.py",
    "base.py",
    "hardware/detect.py",
    "hardware/recording.py",
    "hardware/sysfs.py",
    "hardware/topology.py",
    "hardware/inventory.py",
    "hardware/formats.py",
)
ROOT_IN_CONTAINER = "/opt/deploy-detect"
RECORD = (
    f"import json, sys; sys.path.insert(0, {ROOT_IN_CONTAINER!r}); "
    "from orchestrator.hardware.recording import record_topology; "
    "print(json.dumps(record_topology()))"
)
DETECT_TIMEOUT_S = 120


def recorder_archive() -> bytes:
    """The recorder's modules under /opt/deploy-detect/orchestrator, as tar bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        files = {name: (PACKAGE / name).read_bytes() for name in RECORDER_MODULES}
        # The hardware package's own __init__ pulls in the planner's models: not needed here.
        files["hardware/__init__.py"] = b'"""NVML detection only (for the recorder)."""\n'
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name=f"{ROOT_IN_CONTAINER.strip('/')}/orchestrator/{name}")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def record_remote(client: Any, image: str, node: str) -> dict[str, Any]:
    """Run the recorder in `image` on the node behind `client`, with all its GPUs."""
    container = client.containers.create(
        image=image,
        name=f"deploy-detect-{node}-{uuid.uuid4().hex[:6]}",
        entrypoint=["python3"],
        command=["-c", RECORD],
        labels={LABEL_DOCTOR: f"detect-{node}"},
        network_mode="host",
        device_requests=[{"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}],
        environment={"NVIDIA_DISABLE_REQUIRE": "1"},
        detach=True,
    )
    try:
        container.put_archive("/", recorder_archive())
        container.start()
        status = container.wait(timeout=DETECT_TIMEOUT_S)
        output = container.logs(stdout=True, stderr=False).decode(errors="replace")
        errors = container.logs(stdout=False, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
    lines = output.strip().splitlines()
    if int(status.get("StatusCode", 1)) != 0 or not lines:
        reason = (errors.strip().splitlines() or ["no output"])[-1][:200]
        raise HardwareError(
            f"detection on node {node} failed in {image} ({reason})",
            f"check that `docker run --gpus all {image} nvidia-smi` works on node {node}",
        )
    recording: dict[str, Any] = json.loads(lines[-1])
    return recording


def inventory_from_recording(recording: dict[str, Any]) -> NodeInventory:
    from orchestrator.hardware.detect import detect_node
    from orchestrator.hardware.replay.nvml import FakeNvml
    from orchestrator.hardware.replay.sysfs import write_sysfs

    with tempfile.TemporaryDirectory(prefix="deploy-remote-") as root:
        paths = write_sysfs(recording.get("sysfs", {}), Path(root))
        return detect_node(FakeNvml(recording), paths)


def detect_cluster_nodes(
    cluster: Cluster, image: str, endpoints: Endpoints
) -> dict[str, NodeInventory | DeployError]:
    """Each node's inventory (or the error that stopped its detection), in parallel."""

    def one(node: Node) -> NodeInventory | DeployError:
        try:
            return inventory_from_recording(
                record_remote(endpoints.client(node.docker), image, node.name)
            )
        except DeployError as error:
            return error
        except Exception as error:  # the SDK's APIError, image not found, timeouts
            text = getattr(error, "explanation", None) or str(error)
            return HardwareError(
                f"detection on node {node.name} failed ({str(text).splitlines()[0][:200]})",
                f"check the image {image} on node {node.name} and its GPUs (nvidia-smi)",
            )

    with ThreadPoolExecutor(max_workers=max(1, len(cluster.nodes))) as pool:
        results = list(pool.map(one, cluster.nodes))
    return {node.name: result for node, result in zip(cluster.nodes, results, strict=True)}


def differences(node: Node, found: NodeInventory) -> list[str]:
    """Where the node differs from its cluster-file declaration."""
    problems = []
    if len(found.gpus) != len(node.gpus):
        problems.append(f"{len(found.gpus)} GPUs found, {len(node.gpus)} declared")
    names = sorted({gpu.catalog_name or gpu.name for gpu in found.gpus})
    if names != [node.gpu.name]:
        problems.append(f"GPUs are {', '.join(names)}, {node.gpu.name} declared")
    if found.interconnect != node.interconnect:
        problems.append(f"interconnect {found.interconnect}, {node.interconnect} declared")
    active = set(found.active_rdma_devices)
    missing = [d for d in node.rdma_devices if d.split(":")[0] not in active]
    if missing:
        problems.append(f"RDMA devices {', '.join(missing)} declared but not active")
    return problems
