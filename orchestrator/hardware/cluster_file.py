"""Cluster inventory files: the nodes a deployment may use, written by hand or from detection.

```yaml
name: two-node-h100
fabric: infiniband              # infiniband | roce | ethernet | none
defaults:                       # any node field except name/address, applied to every node
  gpus: 8xH100-80GB-SXM         # shorthand: COUNTxGPU (count defaults to 1)
  interconnect: nvswitch        # nvswitch | nvlink-pairs | pcie (default: from the GPU)
  # nvlink_domain: rack1        # nodes naming one domain share NVLink (GB200/GB300 NVL72)
nodes:
  - name: gpu-a
    address: 192.0.2.10         # rendezvous address other nodes reach
    docker: unix:///var/run/docker.sock   # or tcp://HOST:PORT, ssh://USER@HOST
  - name: gpu-b
    address: 192.0.2.11
    docker: ssh://ops@192.0.2.11
    inventory: gpu-b.json       # `deploy detect --json` output (path relative to this file,
                                # or the document inline) instead of `gpus:`
```

Every error is one line naming the file, the line of the offending key and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from orchestrator.base import Strict
from orchestrator.errors import CatalogError, DockerUnavailableError, HardwareError
from orchestrator.hardware.formats import INVENTORY_KIND, SCHEMA_VERSION
from orchestrator.hardware.model import Cluster, Fabric, Node
from orchestrator.hardware.nodes import (
    DEFAULT_DOCKER,
    catalog_gpu,
    inventory_node,
    shorthand_node,
)
from orchestrator.hardware.yaml_source import LineMap, load_document, validation_error
from orchestrator.schema import GpuSpec, Interconnect

if TYPE_CHECKING:
    from orchestrator.hardware.inventory import NodeInventory

_ENDPOINT_HINT = "use unix:///var/run/docker.sock, tcp://HOST:PORT or ssh://USER@HOST"
_HOST = r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]"
_ENDPOINT_PATTERNS = (
    re.compile(r"unix:///\S+"),
    re.compile(rf"tcp://({_HOST})(:\d{{1,5}})?/?"),
    re.compile(rf"ssh://([A-Za-z0-9._-]+@)?({_HOST})(:\d{{1,5}})?"),
)


def check_docker_endpoint(value: str) -> str:
    if not any(pattern.fullmatch(value) for pattern in _ENDPOINT_PATTERNS):
        raise ValueError(f"{value!r} is not a Docker endpoint; {_ENDPOINT_HINT}")
    port = re.search(r":(\d+)/?$", value)
    if port and not value.startswith("unix:") and not 0 < int(port.group(1)) < 65536:
        raise ValueError(f"{value!r} has port {port.group(1)} out of range; {_ENDPOINT_HINT}")
    return value


class _Entry(Strict):
    docker: str | None = None
    gpus: str | None = Field(
        default=None,
        description="shorthand, e.g. 8xH100-80GB-SXM, or `detect` (through the node's Docker)",
    )
    inventory: str | dict[str, Any] | None = Field(
        default=None, description="a `deploy detect --json` document, inline or a relative path"
    )
    # A CPU node (vLLM's CPU build): cores, NUMA nodes, memory... or the `--cpus` shorthand.
    cpus: int | str | dict[str, Any] | None = Field(
        default=None, description="e.g. {cores: 32, numa_nodes: 2, memory_gib: 256} or '16:64g'"
    )
    interconnect: Interconnect | None = None
    # Linux interface names: at most 15 characters, no '/', ':' or spaces.
    network_interface: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.@-]{1,15}$")
    # RDMA device names as NCCL_IB_HCA takes them, optionally with a port (mlx5_0:1).
    rdma_devices: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+(:[0-9]+)?$")]] | None = None
    # CPU NUMA nodes the GPUs hang off (2 on dual-socket HGX boards); detected for inventories.
    numa_nodes: int | None = Field(default=None, ge=1)
    # A multi-node NVLink domain (an NVL72 rack): nodes naming the same one reach each other's
    # GPUs over NVLink, so TP and EP may span them without the network.
    nvlink_domain: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")

    @field_validator("docker")
    @classmethod
    def _docker(cls, value: str | None) -> str | None:
        return None if value is None else check_docker_endpoint(value)


class NodeDefaults(_Entry):
    """Fields shared by every node unless the node sets them."""


class NodeEntry(_Entry):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    address: str = Field(min_length=1, description="host name or IP address, no port")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not re.fullmatch(_HOST, value):
            raise ValueError(
                f"{value!r} is not a host name or IP address; write it without scheme or port"
            )
        return value


class ClusterFile(Strict):
    schema_version: int = SCHEMA_VERSION
    kind: str = "cluster"
    name: str | None = None
    fabric: Fabric = "ethernet"
    defaults: NodeDefaults | None = None
    nodes: list[NodeEntry] = Field(min_length=1)
    # Settings of the Kubernetes and Slurm targets, checked by `orchestrator.targets.settings`.
    kubernetes: dict[str, Any] | None = None
    slurm: dict[str, Any] | None = None


def _allowed_fields(path: tuple[str | int, ...]) -> list[str]:
    """Field names valid where an unknown field was found (for the hint)."""
    model: type[BaseModel] = ClusterFile
    if path[:1] == ("defaults",):
        model = NodeDefaults
    elif path[:1] == ("nodes",) and len(path) > 1:
        model = NodeEntry
    return list(model.model_fields)


def _merged(entry: NodeEntry, defaults: NodeDefaults | None) -> dict[str, Any]:
    """The node's fields, falling back to `defaults`, with where each one was written."""
    merged: dict[str, Any] = {}
    for field_name in _Entry.model_fields:
        if field_name in entry.model_fields_set:
            merged[field_name] = (getattr(entry, field_name), "node")
        elif defaults is not None and field_name in defaults.model_fields_set:
            merged[field_name] = (getattr(defaults, field_name), "defaults")
        else:
            merged[field_name] = (None, None)
    return merged


def _load_inventory(
    value: str | dict[str, Any], base: Path, lines: LineMap, path: tuple[str | int, ...]
) -> NodeInventory:
    if isinstance(value, str):
        target = base / value
        if not target.is_file():
            raise lines.error(
                path,
                f"inventory file {value!r} not found",
                "give a path relative to the cluster file",
            )
        data, doc_lines = load_document(target, label=str(Path(lines.source).parent / value))
        prefix: tuple[str | int, ...] = ()
    else:
        data, doc_lines, prefix = value, lines, path
    if not isinstance(data, dict):
        raise doc_lines.error(
            prefix, "expected a node inventory mapping", "use `deploy detect --json` output"
        )
    kind = data.get("kind")
    if kind != INVENTORY_KIND:
        raise doc_lines.error(
            (*prefix, "kind"),
            f"expected kind {INVENTORY_KIND!r}, got {kind!r}",
            "use `deploy detect --json` output",
        )
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise doc_lines.error(
            (*prefix, "schema_version"),
            f"node inventory schema_version {version!r} is not supported (this deploy reads {SCHEMA_VERSION})",
            "re-run `deploy detect --json` with this version of deploy",
        )
    # Imported here: its models are needed only for clusters that embed inventories.
    from orchestrator.hardware.inventory import NodeInventory

    try:
        return NodeInventory.model_validate(data)
    except ValidationError as error:
        raise validation_error(error, doc_lines, prefix) from error


def _build_node(
    entry: NodeEntry, defaults: NodeDefaults | None, index: int, base: Path, lines: LineMap
) -> Node:
    fields = _merged(entry, defaults)
    where: tuple[str | int, ...] = ("nodes", index)

    def at(field_name: str) -> tuple[str | int, ...]:
        origin = fields[field_name][1]
        return ("defaults", field_name) if origin == "defaults" else (*where, field_name)

    gpus, inventory = fields["gpus"][0], fields["inventory"][0]
    if fields["cpus"][0] is not None:
        return _cpu_node(entry, fields, at, lines)
    if (gpus is None) == (inventory is None):
        problem = (
            "give either gpus or inventory, not both" if gpus else "missing gpus (or inventory)"
        )
        raise lines.error(where, problem, "e.g. gpus: 8xH100-80GB-SXM")
    common: dict[str, Any] = {
        "name": entry.name,
        "address": entry.address,
        "docker": fields["docker"][0] or DEFAULT_DOCKER,
        "interconnect": fields["interconnect"][0],
        "network_interface": fields["network_interface"][0],
        "rdma_devices": fields["rdma_devices"][0],
    }
    nvlink_domain = fields["nvlink_domain"][0]
    numa_nodes = fields["numa_nodes"][0]
    if gpus == "detect":
        # Found through the node's Docker endpoint, cached (`deploy detect --cluster` refreshes).
        from orchestrator.doctor.inventory_cache import detected_inventory

        try:
            found = detected_inventory(entry.name, common["docker"])
        except (HardwareError, DockerUnavailableError) as error:
            raise lines.error(at("gpus"), error.message, error.hint) from error
        node = _inventory_node(found, common, numa_nodes, lines, at("gpus"))
        return _with_domain(node, nvlink_domain)
    if gpus is not None:
        from orchestrator.hardware.gpus import parse_gpu_spec, tray_problem

        try:
            count, spec = parse_gpu_spec(gpus)
        except CatalogError as error:
            raise lines.error(at("gpus"), str(error)) from error
        tray = tray_problem(spec, count or 1)
        if tray is not None:
            raise lines.error(at("gpus"), tray)
        return shorthand_node(
            gpu=spec,
            count=count or 1,
            numa_nodes=numa_nodes or 1,
            nvlink_domain=nvlink_domain,
            **common,
        )
    detected = _load_inventory(inventory, base, lines, at("inventory"))
    node = _inventory_node(detected, common, numa_nodes, lines, at("inventory"))
    return _with_domain(node, nvlink_domain)


def _with_domain(node: Node, nvlink_domain: str | None) -> Node:
    """The declared multi-node NVLink domain wins over the one NVML's fabric info names."""
    return (
        node if nvlink_domain is None else node.model_copy(update={"nvlink_domain": nvlink_domain})
    )


def _cpu_node(entry: NodeEntry, fields: dict[str, Any], at: Any, lines: LineMap) -> Node:
    """A node that serves on its CPUs: `cpus:` excludes `gpus:` and `inventory:`."""
    from orchestrator.hardware.cpu import CpuSpec, parse_cpus, pseudo_gpu

    for other in ("gpus", "inventory"):
        if fields[other][0] is not None:
            raise lines.error(
                at(other), f"give either cpus or {other}, not both", "a node serves on one of them"
            )
    value = fields["cpus"][0]
    if isinstance(value, (int, str)):
        value = str(value)
        try:
            spec = parse_cpus(value)
        except HardwareError as error:
            raise lines.error(
                at("cpus"), error.message.replace("--cpus ", "cpus "), error.hint
            ) from error
    else:
        try:
            spec = CpuSpec.model_validate(value)
        except ValidationError as error:
            raise validation_error(
                error, lines, at("cpus"), allowed=lambda _: list(CpuSpec.model_fields)
            ) from error
    return Node(
        name=entry.name,
        address=entry.address,
        docker=fields["docker"][0] or DEFAULT_DOCKER,
        gpu=pseudo_gpu(spec),
        gpus=[],
        interconnect="pcie",
        nvlink_domains=[],
        network_interface=fields["network_interface"][0],
        rdma_devices=list(fields["rdma_devices"][0] or []),
        numa_nodes=spec.numa_nodes,
        cpu=spec,
    )


def _inventory_node(
    detected: NodeInventory,
    common: dict[str, Any],
    numa_nodes: int | None,
    lines: LineMap,
    where: tuple[str | int, ...],
) -> Node:
    try:
        gpu_spec = catalog_gpu(detected, "GPU")
    except HardwareError as error:
        raise lines.error(where, error.message.removeprefix("GPU: "), error.hint) from error
    node = inventory_node(detected, gpu=gpu_spec, **common)
    return node.model_copy(update={"numa_nodes": numa_nodes}) if numa_nodes else node


def load_cluster(path: Path) -> Cluster:
    """Read and check a cluster file; every problem is a one-line `HardwareError`."""
    data, lines = load_document(path)
    if not isinstance(data, dict):
        raise lines.error(
            (), "expected a mapping with `nodes:`", "see profiles/clusters/ for examples"
        )
    try:
        parsed = ClusterFile.model_validate(data)
    except ValidationError as error:
        raise validation_error(error, lines, allowed=_allowed_fields) from error
    if parsed.kind != "cluster":
        raise lines.error(("kind",), f"expected kind 'cluster', got {parsed.kind!r}")
    if parsed.schema_version != SCHEMA_VERSION:
        raise lines.error(
            ("schema_version",),
            f"cluster schema_version {parsed.schema_version} is not supported (this deploy reads {SCHEMA_VERSION})",
        )
    seen: dict[str, int] = {}
    for index, entry in enumerate(parsed.nodes):
        if entry.name in seen:
            raise lines.error(
                ("nodes", index, "name"),
                f"node name {entry.name!r} is used twice (also nodes[{seen[entry.name]}])",
                "give every node a unique name",
            )
        seen[entry.name] = index
    nodes = [
        _build_node(entry, parsed.defaults, index, path.parent, lines)
        for index, entry in enumerate(parsed.nodes)
    ]
    first: GpuSpec = nodes[0].gpu
    for index, node in enumerate(nodes[1:], start=1):
        if node.gpu.name != first.name:
            key = "inventory" if "inventory" in parsed.nodes[index].model_fields_set else "gpus"
            if node.cpu is not None or nodes[0].cpu is not None:
                key = "cpus" if "cpus" in parsed.nodes[index].model_fields_set else key
            raise lines.error(
                ("nodes", index, key),
                f"node {node.name!r} has {node.gpu.name} but {nodes[0].name!r} has {first.name}",
                "a cluster uses one GPU model; list the nodes of one model",
            )
    return Cluster(
        name=parsed.name or path.stem,
        nodes=nodes,
        fabric=parsed.fabric,
        source=str(path),
    )
