"""Every render target of every bundled cluster example renders, or refuses in one line with
exit 2: never a traceback. The model is the one each example's header names; both engines,
with and without prefill/decode disaggregation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import cli
from tests.conftest import REPO_ROOT, write_tiny_model

CLUSTERS = sorted((REPO_ROOT / "profiles" / "clusters").glob("*.yaml"))


def _model(cluster: Path) -> str:
    found = re.search(r"deploy (?:plan|up) ([a-z0-9./-]+)", cluster.read_text())
    assert found, f"{cluster.name} names no model in its header"
    return found.group(1)


@pytest.mark.parametrize("cluster", CLUSTERS, ids=[path.stem for path in CLUSTERS])
def test_every_target_of_every_cluster_example_renders_or_refuses_in_one_line(
    cluster: Path, cli_runner: Any, tmp_path: Path
) -> None:
    model = _model(cluster)
    if model.startswith("./"):  # a local model directory: the tiny model CPU examples name
        model = str(write_tiny_model(tmp_path / model[2:]))
    rendered = 0
    for engine in ("vllm", "sglang"):
        for disagg in ([], ["--disagg"]):
            for target in ("compose", "k8s", "slurm"):
                out = tmp_path / f"{engine}-{len(disagg)}-{target}"
                args = ["render", model, "--cluster", str(cluster), "--engine", engine]
                result = cli_runner.invoke(
                    cli, [*args, *disagg, "--target", target, "--out", str(out)]
                )
                case = f"{cluster.name} {engine} {disagg} {target}"
                assert result.exception is None or isinstance(result.exception, SystemExit), (
                    f"{case}: {result.exception!r}"
                )
                assert result.exit_code in (0, 2), f"{case}: {result.output}"
                if result.exit_code == 2:
                    assert result.output.startswith("error: ") and result.output.count("\n") == 1
                else:
                    rendered += 1
    assert rendered >= 3, f"{cluster.name}: nothing rendered"
