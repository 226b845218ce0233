"""Judge recorded machines (`deploy detect --record` files) as if the probe ran there.

The recording is replayed through the probe's own code: NVML answers come from the
`FakeNvml` stand-in and /sys, /proc and /dev from the tree `write_sysfs` materializes. The
container runtime shows a container only the GPUs it was given, renumbered from 0; the
replay does the same with the plan's GPU ids. A recording may add what the engine's image
sets in its environment (`container_env`: CUDA_VERSION, NVIDIA_REQUIRE_CUDA) and what the
probe found in the HF cache (`hf_cache`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.doctor.context import DockerFacts, NodeContext
from orchestrator.doctor.probe import Roots, collect
from orchestrator.doctor.report import Check, DoctorReport
from orchestrator.doctor.run import DoctorOptions, checkpoint_bytes, judge, probe_config
from orchestrator.doctor.targets import node_targets
from orchestrator.engines.common import HF_CACHE_TARGET
from orchestrator.spec import ServiceSpec

if TYPE_CHECKING:
    from orchestrator.plan import Plan


def visible_to_container(recording: dict[str, Any], gpu_ids: list[int]) -> dict[str, Any]:
    """The recording as a container given `gpu_ids` sees it: those GPUs, renumbered."""
    seen = copy.deepcopy(recording)
    seen["gpus"] = [recording["gpus"][index] for index in gpu_ids]

    def sub(table: Any) -> Any:
        if not isinstance(table, list):
            return table
        return [[table[a][b] for b in gpu_ids] for a in gpu_ids]

    if "pcie_levels" in recording:
        seen["pcie_levels"] = sub(recording["pcie_levels"])
    if isinstance(recording.get("p2p"), dict) and "error" not in recording["p2p"]:
        seen["p2p"] = {key: sub(table) for key, table in recording["p2p"].items()}
    return seen


def replay_context(
    plan: Plan,
    services: list[ServiceSpec],
    node: str,
    recording: dict[str, Any],
    root: Path,
    options: DoctorOptions | None = None,
) -> NodeContext:
    from orchestrator.hardware.replay.nvml import FakeNvml
    from orchestrator.hardware.replay.sysfs import write_sysfs

    options = options or DoctorOptions()
    target = next(t for t in node_targets(plan, services) if t.name == node)
    assert target.spec is not None, f"no service on node {node}"
    image_env: dict[str, str] = dict(recording.get("container_env", {}))
    paths = write_sysfs(recording.get("sysfs", {}), root)
    roots = Roots(sys_root=str(paths.sys), proc=str(paths.proc), dev=str(root / "dev"))
    nvml = FakeNvml(visible_to_container(recording, target.gpus)) if target.gpus else None
    config = probe_config(plan, target, target.spec, options)
    config["listen"] = []  # this machine's ports say nothing about the recorded one
    facts = collect(config, roots, nvml, {**image_env, **target.spec.environment})
    facts["ports_free"] = {str(port): True for port in target.ports}
    # The HF cache as the probe saw it there (`hf_cache: {free_bytes, checkpoint_present}`).
    facts["storage"] = {
        "hf_cache": HF_CACHE_TARGET,
        "free_bytes": None,
        "checkpoint_present": None,
        **recording.get("hf_cache", {}),
    }
    return NodeContext(
        target=target,
        engine=plan.engine.name,
        image=target.spec.image,
        simulate=options.simulate,
        gpu_name=plan.hardware.gpu,
        interconnect=plan.hardware.interconnect,
        fabric=plan.hardware.fabric,
        multi_node=len(plan.hardware.node_list) > 1,
        checkpoint_bytes=checkpoint_bytes(plan),
        local_model=plan.model.local_path is not None,
        docker=DockerFacts(
            version="recorded",
            api_version="recorded",
            runtimes=["nvidia", "runc"],
            image_present=True,
            image_env=image_env,
        ),
        probe=facts,
    )


def replay_doctor(
    plan: Plan,
    services: list[ServiceSpec],
    recordings: dict[str, dict[str, Any]],
    root: Path,
) -> DoctorReport:
    checks: list[Check] = []
    for node, recording in recordings.items():
        context = replay_context(plan, services, node, recording, root / node)
        checks += judge(context)
    return DoctorReport.of(checks)
