"""`deploy detect`: this machine's GPUs, their topology and network, through NVML."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from orchestrator.cli.options import json_option


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
def detect(as_json: bool, replay: Path | None, record: Path | None) -> None:
    """Detect local GPUs, NVLink/PCIe topology, NUMA placement, NICs and RDMA devices.

    --json writes a node inventory (kind: node-inventory) that a cluster file can embed
    (`inventory:` inline) or reference by path.
    """
    from orchestrator.hardware.detect import detect_node
    from orchestrator.hardware.report import format_inventory

    if record is not None:
        import json

        from orchestrator.hardware.recording import record_topology

        record.write_text(json.dumps(record_topology(), indent=1) + "\n", encoding="utf-8")
    if replay is None:
        inventory = detect_node()
    else:
        from orchestrator.hardware.fake_nvml import FakeNvml
        from orchestrator.hardware.fake_sysfs import write_sysfs

        fake = FakeNvml.from_file(replay)
        with tempfile.TemporaryDirectory(prefix="deploy-replay-") as root:
            paths = write_sysfs(fake.topology.get("sysfs", {}), Path(root))
            inventory = detect_node(fake, paths)
    if as_json:
        click.echo(inventory.model_dump_json(indent=2))
    else:
        click.echo(format_inventory(inventory))
