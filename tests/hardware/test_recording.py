"""`deploy detect --record`: a recording replays to the same inventory as live detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.hardware.detect import detect_node
from orchestrator.hardware.recording import record_topology
from orchestrator.hardware.replay.nvml import FakeNvml
from orchestrator.hardware.replay.sysfs import write_sysfs

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOPOLOGIES = sorted(
    path.stem for path in FIXTURES.glob("*.json") if not path.stem.startswith("real-")
)


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_record_then_replay_gives_the_same_inventory(
    fixtures_dir: Path, tmp_path: Path, name: str
) -> None:
    fake = FakeNvml.from_file(fixtures_dir / f"{name}.json")
    paths = write_sysfs(fake.topology.get("sysfs", {}), tmp_path / "live")
    live = detect_node(fake, paths)
    recording = json.loads(json.dumps(record_topology(fake, paths)))
    replayed = detect_node(
        FakeNvml(recording), write_sysfs(recording["sysfs"], tmp_path / "replay")
    )
    assert replayed.model_copy(update={"hostname": live.hostname}) == live


def test_record_option_without_nvml_exits_2(tmp_path: Path) -> None:
    import pynvml

    try:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        pytest.skip("this machine has a working NVML")
    except pynvml.NVMLError:
        pass
    result = CliRunner().invoke(cli, ["detect", "--record", str(tmp_path / "rec.json")])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: cannot detect GPUs: NVML is unavailable (library not found)"
    )
    assert not (tmp_path / "rec.json").exists()
