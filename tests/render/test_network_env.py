"""NCCL's socket traffic on the cluster file's interface; Gloo kept off IPoIB (the engines'
docs put it on Ethernet where NCCL uses InfiniBand)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.engines.network_env import socket_environment
from orchestrator.plan import NodeSummary

REPO = Path(__file__).resolve().parent.parent.parent


def _node(interface: str | None) -> NodeSummary:
    return NodeSummary(
        name="a",
        address="10.0.0.1",
        docker="unix:///var/run/docker.sock",
        gpus=8,
        network_interface=interface,
    )


@pytest.mark.parametrize("ipoib", ["ib0", "ib1", "ibp12s0", "ibs3", "ib0.8001"])
def test_gloo_stays_off_ipoib(ipoib: str) -> None:
    assert socket_environment(_node(ipoib)) == {"NCCL_SOCKET_IFNAME": ipoib}


@pytest.mark.parametrize("ethernet", ["eth0", "ens1f0", "bond0", "enp65s0f1"])
def test_both_on_an_ethernet_interface(ethernet: str) -> None:
    assert socket_environment(_node(ethernet)) == {
        "NCCL_SOCKET_IFNAME": ethernet,
        "GLOO_SOCKET_IFNAME": ethernet,
    }
    assert socket_environment(_node(None)) == {}


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_the_infiniband_example_renders_no_gloo_on_ib0(engine: str, tmp_path: Path) -> None:
    cluster = REPO / "profiles" / "clusters" / "two-node-h100-ib.yaml"
    args = ["render", "deepseek-r1", "--nodes", "2", "--engine", engine, "--cluster", str(cluster)]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for node in ("h100-a", "h100-b"):
        compose = yaml.safe_load((tmp_path / node / "compose.yaml").read_text())
        for service in compose["services"].values():
            env = service.get("environment", [])
            assert "NCCL_SOCKET_IFNAME=ib0" in env
            assert not any(item.startswith("GLOO_SOCKET_IFNAME=") for item in env)
