"""Privileged containers only where DeepEP runs across nodes; RDMA alone gets the narrow set."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.engines.privileges import runs_deepep

REPO = Path(__file__).resolve().parent.parent.parent
TWO = str(REPO / "profiles" / "clusters" / "two-node-h100-ib.yaml")


def test_deepep_is_read_from_either_spelling() -> None:
    assert runs_deepep("sglang", ["--moe-a2a-backend", "deepep"])
    assert runs_deepep("sglang", ["--moe-a2a-backend=deepep_v2"])
    assert runs_deepep("vllm", ["--all2all-backend", "deepep_low_latency"])
    assert not runs_deepep("vllm", ["--all2all-backend", "allgather_reducescatter"])
    assert not runs_deepep("sglang", ["--moe-a2a-backend", "none", "deepep"])
    assert not runs_deepep("vllm", ["--moe-a2a-backend", "deepep"])


def _services(tmp_path: Path, *args: str) -> dict[str, dict[str, object]]:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["render", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    found: dict[str, dict[str, object]] = {}
    for path in out.glob("*/compose.yaml"):
        found.update(yaml.safe_load(path.read_text(encoding="utf-8"))["services"])
    return found


def test_tp_across_nodes_gets_rdma_without_privileges(tmp_path: Path) -> None:
    services = _services(tmp_path, "llama-3.1-405b", "--cluster", TWO, "--tp", "16")
    for name in ("serve-0-rank0", "serve-0-rank1"):
        service = services[name]
        assert "privileged" not in service
        assert service["cap_add"] == ["IPC_LOCK"]
        assert service["devices"] == ["/dev/infiniband:/dev/infiniband"]
        assert service["ulimits"] == {"memlock": -1, "stack": 67108864}


def test_deepep_across_nodes_is_privileged(tmp_path: Path) -> None:
    args = ["deepseek-v3", "--cluster", TWO, "--tp", "1", "--dp", "16", "--ep", "16"]
    services = _services(tmp_path, *args)
    assert services["serve-0-rank0"]["privileged"] is True
    assert services["serve-0-rank1"]["privileged"] is True
