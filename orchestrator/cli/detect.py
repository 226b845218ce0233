"""`deploy detect`: this machine's GPUs, their topology and network, through NVML."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.options import json_option
from orchestrator.errors import InputError

_RECORD_HINT = "record one with `deploy detect --record FILE` on the GPU machine"


@click.command()
@json_option
@click.option(
    "--replay",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    hidden=True,
    help="Answer NVML and sysfs queries from a recorded topology (JSON) instead of this machine.",
)
@click.option(
    "--record",
    type=click.Path(path_type=Path, dir_okay=False),
    hidden=True,
    help="Also write every raw NVML and sysfs answer to FILE, for --replay elsewhere.",
)
@click.option(
    "--cluster",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Detect every node of this cluster file through its Docker endpoint instead.",
)
@click.option(
    "--image",
    metavar="IMAGE",
    help="Image to detect in, with --cluster (default: the newest pinned vLLM image).",
)
@click.option(
    "--cpus",
    "cpus",
    is_flag=True,
    help="Detect this machine as a CPU node (cores, NUMA nodes, memory) for vLLM's CPU build; "
    "--json writes the `cpus:` mapping of a cluster file.",
)
def detect(
    as_json: bool,
    replay: Path | None,
    record: Path | None,
    cluster: Path | None,
    image: str | None,
    cpus: bool = False,
) -> None:
    """Detect local GPUs, NVLink/PCIe topology, NUMA placement, NICs and RDMA devices.

    --json writes a node inventory (kind: node-inventory) that a cluster file can embed
    (`inventory:` inline) or reference by path. --cluster FILE detects every node of the
    file in a container on that node, and says where a node differs from its declaration.
    """
    if cpus:
        if cluster is not None or replay is not None or record is not None:
            raise InputError(
                "--cpus detects this machine's CPUs only",
                "drop --cluster/--replay/--record, or drop --cpus",
            )
        from orchestrator.hardware.cpu import describe_cpu, detect_cpu

        found = detect_cpu()
        click.echo(found.model_dump_json(indent=2) if as_json else describe_cpu(found))
        return
    if cluster is not None:
        _detect_cluster(cluster, image, as_json)
        return
    from orchestrator.hardware.detect import detect_node
    from orchestrator.hardware.report import format_inventory

    if record is not None:
        from orchestrator.hardware.recording import record_topology

        text = json.dumps(record_topology(), indent=1) + "\n"
        try:
            record.write_text(text, encoding="utf-8")
        except OSError as error:
            raise InputError(
                f"cannot write {record} ({error.strerror})", "pass a writable --record path"
            ) from None
    if replay is None:
        inventory = detect_node()
    else:
        from orchestrator.hardware.replay.sysfs import write_sysfs

        fake = _load_replay(replay)
        with tempfile.TemporaryDirectory(prefix="deploy-replay-") as root:
            paths = write_sysfs(fake.topology.get("sysfs", {}), Path(root))
            inventory = detect_node(fake, paths)
    if as_json:
        click.echo(inventory.model_dump_json(indent=2))
    else:
        click.echo(format_inventory(inventory))


def _detect_cluster(path: Path, image: str | None, as_json: bool) -> None:
    from orchestrator.docker.endpoints import Endpoints
    from orchestrator.doctor.inventory_cache import store
    from orchestrator.doctor.remote_detect import detect_cluster_nodes, differences
    from orchestrator.engines.versions import default_version, image_for
    from orchestrator.errors import DeployError
    from orchestrator.hardware.cluster_file import load_cluster
    from orchestrator.hardware.report import format_inventory

    declared = load_cluster(path)
    with Endpoints() as endpoints:
        found = detect_cluster_nodes(
            declared, image or image_for("vllm", default_version("vllm")), endpoints
        )
    failed = False
    documents: dict[str, Any] = {}
    for node in declared.nodes:
        result = found[node.name]
        if isinstance(result, DeployError):
            failed = True
            documents[node.name] = {"error": str(result)}
            if not as_json:
                click.echo(f"== {node.name} ({node.docker}): error: {result}")
            continue
        store(node.name, node.docker, result)  # what `gpus: detect` plans on from now
        problems = differences(node, result)
        failed = failed or bool(problems)
        documents[node.name] = {
            "inventory": result.model_dump(mode="json"),
            "differs_from_cluster_file": problems,
        }
        if not as_json:
            click.echo(f"== {node.name} ({node.docker})")
            click.echo(format_inventory(result))
            for problem in problems:
                click.echo(f"differs from {path.name}: {problem}")
    if as_json:
        click.echo(json.dumps({"nodes": documents}, indent=2))
    if failed:
        raise click.exceptions.Exit(2)


def _load_replay(path: Path) -> Any:
    """A FakeNvml for a recorded topology, or one line saying why the file is not one."""
    from orchestrator.hardware.replay.nvml import FakeNvml

    try:
        topology = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        message = f"cannot read the recorded topology {path} ({reason})"
        raise InputError(message, _RECORD_HINT) from None
    if not isinstance(topology, dict) or not isinstance(topology.get("gpus"), list):
        raise InputError(f'{path} is not a recorded topology (no "gpus" list)', _RECORD_HINT)
    return FakeNvml(topology)
