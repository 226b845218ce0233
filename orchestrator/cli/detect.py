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
def detect(as_json: bool, replay: Path | None, record: Path | None) -> None:
    """Detect local GPUs, NVLink/PCIe topology, NUMA placement, NICs and RDMA devices.

    --json writes a node inventory (kind: node-inventory) that a cluster file can embed
    (`inventory:` inline) or reference by path.
    """
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
        from orchestrator.hardware.fake_sysfs import write_sysfs

        fake = _load_replay(replay)
        with tempfile.TemporaryDirectory(prefix="deploy-replay-") as root:
            paths = write_sysfs(fake.topology.get("sysfs", {}), Path(root))
            inventory = detect_node(fake, paths)
    if as_json:
        click.echo(inventory.model_dump_json(indent=2))
    else:
        click.echo(format_inventory(inventory))


def _load_replay(path: Path) -> Any:
    """A FakeNvml for a recorded topology, or one line saying why the file is not one."""
    from orchestrator.hardware.fake_nvml import FakeNvml

    try:
        topology = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        message = f"cannot read the recorded topology {path} ({reason})"
        raise InputError(message, _RECORD_HINT) from None
    if not isinstance(topology, dict) or not isinstance(topology.get("gpus"), list):
        raise InputError(f'{path} is not a recorded topology (no "gpus" list)', _RECORD_HINT)
    return FakeNvml(topology)
