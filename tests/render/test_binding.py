"""Every listener on every node follows the README's rule: the node's cluster address where a
service on another node must reach it, 127.0.0.1 otherwise, and all interfaces only for the
deployment's endpoint with --public. Checked on the rendered files of multi-node replicas,
prefill/decode pools and multi-node instances, for both engines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from orchestrator.cli import cli

REPO = Path(__file__).resolve().parent.parent.parent
TWO = str(REPO / "profiles" / "clusters" / "two-node-h100-ib.yaml")
TWELVE = str(REPO / "profiles" / "clusters" / "twelve-node-h100-ib.yaml")
LOOPBACK = "127.0.0.1"
ANY = "0.0.0.0"

LAYOUTS = {
    "vllm-replicas": ["llama-3.1-70b", "--engine", "vllm", "--cluster", TWO, "--tp", "8"],
    "sglang-replicas": ["llama-3.1-70b", "--engine", "sglang", "--cluster", TWO, "--tp", "8"],
    "vllm-pd": ["llama-3.1-8b", "--engine", "vllm", "--cluster", TWO, "--disagg"],
    "sglang-pd": ["llama-3.1-8b", "--engine", "sglang", "--cluster", TWO, "--disagg"],
    "sglang-wide-ep-pd": [
        "deepseek-v3",
        "--engine",
        "sglang",
        "--cluster",
        TWELVE,
        "--disagg",
        "--prefill-gpus",
        "32",
        "--decode-gpus",
        "64",
    ],
    "vllm-tp16": ["llama-3.1-405b", "--engine", "vllm", "--cluster", TWO, "--tp", "16"],
}


def _render(args: list[str], out: Path) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    result = CliRunner().invoke(cli, ["render", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    addresses = {node["name"]: node["address"] for node in plan["hardware"]["node_list"]}
    services: dict[str, dict[str, Any]] = {}
    for compose in sorted(out.glob("*/compose.yaml")):
        for name, service in yaml.safe_load(compose.read_text(encoding="utf-8"))[
            "services"
        ].items():
            services[f"{compose.parent.name}/{name}"] = service
    return addresses, services


def _value(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


def _listeners(service: dict[str, Any]) -> list[str]:
    """The addresses a service listens on: its --host, its published ports' host IPs."""
    found = [port.split(":")[0] for port in service.get("ports", [])]
    command = [str(word) for word in service["command"]]
    if service.get("network_mode") == "host":
        host = _value(command, "--host")
        if host is not None:
            found.append(host)
    return found


@pytest.mark.parametrize("public", [False, True], ids=["private", "public"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_listener_is_loopback_or_the_node_address(
    layout: str, public: bool, tmp_path: Path
) -> None:
    args = LAYOUTS[layout] + (["--public"] if public else [])
    addresses, services = _render(args, tmp_path / layout)
    fronts = [
        key for key, s in services.items() if s["labels"]["ai.deploy.role"] in ("lb", "router")
    ]
    for key, service in services.items():
        node = key.split("/")[0]
        allowed = {LOOPBACK, addresses[node]}
        is_endpoint = key in fronts or (not fronts and service["labels"]["ai.deploy.rank"] == "0")
        if public and is_endpoint:
            allowed.add(ANY)
        for address in _listeners(service):
            assert address in allowed, f"{layout}: {key} listens on {address}"
        # Inside the container a health check reaches the server where it listens.
        test = " ".join(service["healthcheck"]["test"])
        if "http://" in test and service.get("network_mode") == "host":
            host = _value([str(w) for w in service["command"]], "--host")
            if host not in (None, ANY):
                assert f"http://{host}:" in test, f"{layout}: {key} probes {test}"
        # Peers reach engine side channels on the node's own address, never a guess.
        environment = dict(
            item.split("=", 1) for item in service.get("environment", []) if "=" in item
        )
        for variable in ("VLLM_NIXL_SIDE_CHANNEL_HOST", "VLLM_HOST_IP", "SGLANG_HOST_IP"):
            if variable in environment:
                assert environment[variable] == addresses[node], f"{layout}: {key} {variable}"
    if fronts and not public:
        for key in fronts:
            command = [str(word) for word in services[key]["command"]]
            assert _value(command, "--host") in (None, LOOPBACK), key


def test_engines_on_other_nodes_never_listen_on_all_interfaces(tmp_path: Path) -> None:
    addresses, services = _render(LAYOUTS["vllm-replicas"] + ["--public"], tmp_path / "r")
    remote = services["h100-b/serve-1"]
    assert _value([str(w) for w in remote["command"]], "--host") == addresses["h100-b"]
    nginx = (tmp_path / "r" / "h100-a" / "nginx.conf").read_text(encoding="utf-8")
    assert f"server {addresses['h100-b']}:8002" in nginx
