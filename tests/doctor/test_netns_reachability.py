"""Cross-node reachability for real: two network namespaces this test creates, joined by a
veth pair, the probe listening in one and connecting from the other. Traffic goes only to
the addresses inside those namespaces."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from orchestrator.doctor.checks_network import interface_check, reachability_check
from orchestrator.doctor.containers import PROBE_SOURCE
from orchestrator.doctor.context import NodeContext
from orchestrator.doctor.targets import NodeTarget
from orchestrator.spec import Probe, ServiceSpec

ADDRESS_A, ADDRESS_B = "10.214.77.1", "10.214.77.2"
LISTEN_PORT, CLOSED_PORT = 29501, 29502


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=30, capture_output=True)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and the ip binary")
    tag = uuid.uuid4().hex[:6]
    ns_a, ns_b = f"dpa{tag}", f"dpb{tag}"
    veth_a, veth_b = f"va{tag}", f"vb{tag}"
    try:
        _ip("netns", "add", ns_a)
        _ip("netns", "add", ns_b)
        _ip("link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        _ip("link", "set", veth_a, "netns", ns_a)
        _ip("link", "set", veth_b, "netns", ns_b)
        for ns, veth, address in ((ns_a, veth_a, ADDRESS_A), (ns_b, veth_b, ADDRESS_B)):
            _ip("-n", ns, "addr", "add", f"{address}/30", "dev", veth)
            _ip("-n", ns, "link", "set", veth, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield ns_a, ns_b
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "delete", ns], check=False, timeout=30)


def _in(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-c", PROBE_SOURCE, *args]


def _first_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    """The probe's facts line, waiting on its stdout with a bounded deadline."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            raise AssertionError(f"the probe printed nothing in {timeout_s} s")
    return process.stdout.readline()


def _target(name: str, address: str) -> NodeTarget:
    spec = ServiceSpec(
        name="serve-0-rank0",
        node=name,
        role="serve",
        image="deploy-sim:latest",
        command=["--master-port", str(LISTEN_PORT)],
        network_mode="host",
        probe=Probe(kind="process", start_period_s=0),
    )
    return NodeTarget(
        name=name,
        address=address,
        docker="unix:///var/run/docker.sock",
        spec=spec,
        gpus=[],
        interface=None,
        rdma_devices=[],
        ports={LISTEN_PORT: "rendezvous", CLOSED_PORT: "NIXL side channel"},
        peer_ports={LISTEN_PORT: "rendezvous", CLOSED_PORT: "NIXL side channel"},
    )


def test_probe_reaches_a_peer_namespace_over_veth(namespaces: tuple[str, str]) -> None:
    ns_a, ns_b = namespaces
    config = {"listen": [LISTEN_PORT], "serve_seconds": 60, "gpus": False}
    server = subprocess.Popen(
        _in(ns_a, "serve", json.dumps(config)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        facts = json.loads(_first_line(server, 30))
        assert facts["listening"] == [LISTEN_PORT]
        veth = next(name for name in facts["interfaces"] if name.startswith("va"))
        # The address comes from the namespace's own /proc/net/fib_trie and route table.
        assert facts["interfaces"][veth]["ipv4"] == [ADDRESS_A]
        targets = f"{ADDRESS_A}:{LISTEN_PORT},{ADDRESS_A}:{CLOSED_PORT}"
        connected = subprocess.run(
            _in(ns_b, "connect", targets), capture_output=True, text=True, timeout=60, check=True
        )
        results = json.loads(connected.stdout)
    finally:
        server.kill()
        server.wait(timeout=30)
    assert results == {
        f"{ADDRESS_A}:{LISTEN_PORT}": "ok",
        f"{ADDRESS_A}:{CLOSED_PORT}": "Connection refused",
    }

    context = NodeContext(
        target=_target("node-a", ADDRESS_A),
        engine="vllm",
        image="deploy-sim:latest",
        multi_node=True,
        probe=facts,
        reach={f"node-b -> {target}": result for target, result in results.items()},
    )
    check = reachability_check(context)
    assert check.status == "fail"
    assert check.detail == (
        f"node-b cannot reach {ADDRESS_A}:{CLOSED_PORT} (NIXL side channel): Connection refused"
    )
    assert check.fix == (
        f"open TCP {CLOSED_PORT} from node-b to node-a (firewall, security group) and check"
        f" that {ADDRESS_A} is the address node-b reaches node-a at"
    )
    # Without a named interface, the doctor names the one that holds the node's address.
    interface = interface_check(context)
    assert interface.status == "warn"
    assert interface.fix.startswith(f"set `network_interface: {veth}` for node node-a")
