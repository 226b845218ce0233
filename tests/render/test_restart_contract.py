"""One restart decision for the compose file, launch.sh and `deploy up`: single containers
restart by Docker's policy, multi-node groups by deploy's supervisor, whole."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from orchestrator.engines import build_services
from orchestrator.engines.common import healthcheck_test
from orchestrator.runtime.containers import create_kwargs, healthcheck_for
from orchestrator.targets.compose.render import render_deployment

from .conftest import scenario


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
@pytest.mark.parametrize("layout", ["1gpu", "2node"])
def test_compose_and_created_container_agree_on_the_restart_policy(
    engine: str, layout: str, tmp_path: Path
) -> None:
    plan = scenario(engine, layout)
    services = build_services(plan)
    render_deployment(plan, services, tmp_path / "out")
    for spec in services:
        compose = yaml.safe_load((tmp_path / "out" / spec.node / "compose.yaml").read_text())
        rendered = compose["services"][spec.name]["restart"]
        created = create_kwargs(spec, deployment="d", plan_hash="h", host_env={})
        assert created["restart_policy"] == {"Name": rendered}
        if layout == "2node":
            assert (rendered, spec.restarted_by, spec.group) == ("no", "deploy", "serve-0")
        else:
            assert (rendered, spec.restarted_by, spec.group) == ("unless-stopped", "docker", None)
    readme = (tmp_path / "out" / "README.md").read_text()
    if layout == "2node":
        assert "deploy's supervisor restarts group `serve-0`" in readme
        text = (tmp_path / "out" / services[0].node / "compose.yaml").read_text()
        assert "# no Docker restart: deploy's supervisor restarts group serve-0 whole" in text
    else:
        assert "Docker (`restart: unless-stopped`) restarts `serve-0`" in readme


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_a_rank_is_unhealthy_once_rank_0_is_gone(engine: str) -> None:
    """The rank's health check, run as Docker runs it (`sh -c`), against a real listener on
    loopback standing in for rank 0's rendezvous endpoint."""
    rank1 = next(s for s in build_services(scenario(engine, "2node")) if s.rank == 1)
    assert rank1.probe.kind == "peer" and rank1.probe.host == "192.0.2.10"
    assert healthcheck_for(rank1) is not None
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        probe = rank1.probe.model_copy(update={"host": "127.0.0.1", "port": port})
        command = healthcheck_test(probe)[1]
        assert subprocess.run(["sh", "-c", command], timeout=30, check=False).returncode == 0
    # Rank 0 gone: nothing listens on its port any more.
    assert subprocess.run(["sh", "-c", command], timeout=30, check=False).returncode != 0
