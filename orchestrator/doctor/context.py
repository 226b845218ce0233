"""Everything the checks of one node look at: the plan's intent and what was found.

The checks are pure functions of a `NodeContext`, so a recorded machine (NVML and sysfs
stand-ins replayed through the probe's own code) is judged exactly like a live one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.doctor.targets import NodeTarget


@dataclass
class DockerFacts:
    """What the node's Docker endpoint says about itself and the image."""

    error: str | None = None
    version: str | None = None
    api_version: str | None = None
    runtimes: list[str] = field(default_factory=list)
    cdi_spec_dirs: list[str] = field(default_factory=list)
    image_present: bool | None = None
    image_env: dict[str, str] = field(default_factory=dict)


@dataclass
class NodeContext:
    target: NodeTarget
    engine: str
    image: str
    simulate: bool = False
    # The deployment already runs: its own processes hold the GPUs and ports.
    running: bool = False
    # the plan's declaration
    gpu_name: str | None = None  # the catalog GPU the plan was made for
    interconnect: str = "pcie"
    fabric: str = "ethernet"
    multi_node: bool = False
    checkpoint_bytes: int | None = None
    local_model: bool = False
    # what was found
    docker: DockerFacts = field(default_factory=DockerFacts)
    probe: dict[str, Any] | None = None
    probe_error: str | None = None
    # The probe ran without the node's GPUs because Docker refused them (no NVIDIA runtime,
    # no CDI device, a broken driver): why. The checks that need no GPU still ran.
    gpu_probe_error: str | None = None
    # "peer -> address:port" -> "ok" or the error
    reach: dict[str, str] = field(default_factory=dict)
    # seconds the node's clock is off this machine's, beyond the measurement's uncertainty
    clock_offset_s: float | None = None

    @property
    def node(self) -> str:
        return self.target.name

    @property
    def host_network(self) -> bool:
        return self.target.spec is not None and self.target.spec.network_mode == "host"

    @property
    def uses_rdma(self) -> bool:
        spec = self.target.spec
        return spec is not None and any(d.startswith("/dev/infiniband") for d in spec.devices)

    def env(self, key: str) -> str | None:
        """A variable as the engine's container has it (the probe's view, else the spec's)."""
        if self.probe is not None and key in self.probe.get("env", {}):
            return str(self.probe["env"][key])
        if self.target.spec is not None:
            return self.target.spec.environment.get(key)
        return None
