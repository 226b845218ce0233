"""First starts: start periods cover the checkpoint's download at the stated or given rate;
compiled-kernel caches and log rotation come with every engine container."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.engines.cold_start import DEFAULT_DOWNLOAD_GIB_PER_S

REPO = Path(__file__).resolve().parent.parent.parent
TWO = str(REPO / "profiles" / "clusters" / "two-node-h100-ib.yaml")
ARGS = ["deepseek-r1", "--engine", "sglang", "--cluster", TWO, "--tp", "16", "--ep", "1"]


def _rank0(tmp_path: Path, *extra: str) -> dict[str, object]:
    out = tmp_path / "-".join(extra or ("default",))
    result = CliRunner().invoke(cli, ["render", *ARGS, *extra, "--out", str(out)])
    assert result.exit_code == 0, result.output
    compose = yaml.safe_load((out / "h100-a" / "compose.yaml").read_text(encoding="utf-8"))
    service: dict[str, object] = compose["services"]["serve-0-rank0"]
    return service


def _start_s(service: dict[str, object]) -> int:
    health = service["healthcheck"]
    assert isinstance(health, dict)
    return int(str(health["start_period"]).rstrip("s"))


def test_start_period_covers_a_download_at_the_stated_rate(tmp_path: Path) -> None:
    cached = _start_s(_rank0(tmp_path, "--download-rate", "0"))
    default = _start_s(_rank0(tmp_path))
    # DeepSeek-R1's FP8 checkpoint is about 640 GiB.
    assert 600 / DEFAULT_DOWNLOAD_GIB_PER_S <= default - cached <= 700 / DEFAULT_DOWNLOAD_GIB_PER_S
    faster = _start_s(_rank0(tmp_path, "--download-rate", "1"))
    assert 600 <= faster - cached <= 720


def test_engines_keep_jit_caches_and_rotate_logs(tmp_path: Path) -> None:
    service = _rank0(tmp_path)
    volumes = service["volumes"]
    assert isinstance(volumes, list)
    assert "~/.cache/deploy-jit/sglang/deep_gemm:/root/.cache/deep_gemm" in volumes
    assert "~/.cache/deploy-jit/sglang/sglang:/root/.cache/sglang" in volumes
    assert service["logging"] == {
        "driver": "json-file",
        "options": {"max-file": "5", "max-size": "100m"},
    }
    assert service["ipc"] == "host" and "shm_size" not in service


def test_a_negative_download_rate_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["render", *ARGS, "--download-rate", "-1", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2
    assert "--download-rate" in result.output
