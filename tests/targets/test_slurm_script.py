"""The Slurm batch script: one step per service on the plan's node, the runtime's wrapping,
secrets by reference, and the same engine command line as compose."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from orchestrator.engines import build_services
from orchestrator.targets.render import render_target
from orchestrator.targets.settings import TargetSettings

from .conftest import render, scenario


def _script(tmp_path: Path, engine: str, layout: str, **slurm: str) -> str:
    render("slurm", engine, layout, tmp_path, slurm=slurm)
    return (tmp_path / "slurm" / "job.sbatch").read_text()


def _steps(script: str) -> dict[str, str]:
    """Service name -> its start function's body, continuation lines joined."""
    bodies = re.findall(
        r"^start_(\w+)\(\) \{\n(.*?^  echo \"deploy: started [^\n]*\n)\}$", script, re.M | re.S
    )
    return {name: re.sub(r" \\\n +", " ", body) for name, body in bodies}


def _program_words(line: list[str]) -> list[str]:
    """The words after srun's own options (which all start with --, before the program)."""
    position = line.index("srun") + 1
    while line[position].startswith("--"):
        position += 1
    return line[position:]


def test_each_rank_is_one_step_on_its_node(tmp_path: Path) -> None:
    steps = _steps(_script(tmp_path, "vllm", "2node"))
    assert sorted(steps) == ["serve_0_rank0", "serve_0_rank1"]
    for rank, body in enumerate([steps["serve_0_rank0"], steps["serve_0_rank1"]]):
        assert f'--nodelist="${{NODES[{rank}]}}"' in body
        assert "--nodes=1 --ntasks=1" in body
        assert "--gres=gpu:8" in body
        assert f'VLLM_HOST_IP="${{NODE_ADDR[{rank}]}}"' in body
        assert '--master-addr "${NODE_ADDR[0]}"' in body
        assert f"--node-rank {rank}" in body


@pytest.mark.parametrize("layout", ["2node", "pd2node", "replicas"])
def test_the_engine_command_lines_are_the_compose_ones(tmp_path: Path, layout: str) -> None:
    plan = scenario("sglang", layout)
    services = build_services(plan)
    render_target("slurm", plan, services, tmp_path, TargetSettings())
    steps = _steps((tmp_path / "slurm" / "job.sbatch").read_text())
    addresses = {
        node.address: f"${{NODE_ADDR[{i}]}}" for i, node in enumerate(plan.hardware.node_list)
    }
    for spec in services:
        if spec.role == "lb":
            continue
        body = steps[re.sub(r"[^A-Za-z0-9_]", "_", spec.name)]
        words = _program_words(shlex.split(body.split(" &\n")[0]))
        expected = [*(spec.entrypoint or []), *spec.command]
        # Node addresses are the one difference: read from Slurm when the job starts.
        for address, variable in addresses.items():
            expected = [word.replace(address, variable) for word in expected]
        if "--host" in expected and spec.ports:
            expected[expected.index("--host") + 1] = spec.ports[0].host_ip
        assert words == expected


def test_runtimes_wrap_the_same_program(tmp_path: Path) -> None:
    pyxis = _steps(_script(tmp_path / "p", "vllm", "1gpu"))["serve_0"]
    assert "--container-image=vllm/vllm-openai:v0.33.0" in pyxis
    assert (
        '--container-mounts="${HF_HOME:-$HOME/.cache/huggingface}:/root/.cache/huggingface' in pyxis
    )
    apptainer = _steps(_script(tmp_path / "a", "vllm", "1gpu", runtime="apptainer"))["serve_0"]
    assert (
        'apptainer exec --nv --bind "${HF_HOME:-$HOME/.cache/huggingface}:/root/.cache/huggingface'
    ) in apptainer
    assert (
        " docker://vllm/vllm-openai:v0.33.0 vllm serve meta-llama/Llama-3.1-8B-Instruct"
    ) in apptainer
    bare = _steps(_script(tmp_path / "b", "vllm", "1gpu", runtime="bare-metal"))["serve_0"]
    assert "container" not in bare and "apptainer" not in bare
    assert "--gres=gpu:1 vllm serve meta-llama/Llama-3.1-8B-Instruct" in bare


def test_secrets_stay_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVE_KEY", "sk-do-not-write-me")
    script = _script(tmp_path, "vllm", "1gpu-public-key")
    assert 'VLLM_API_KEY="${SERVE_KEY}"' in script
    assert "sk-do-not-write-me" not in script


def test_the_load_balancers_config_is_written_by_the_job(tmp_path: Path) -> None:
    script = _script(tmp_path, "vllm", "replicas")
    conf = re.search(
        r'cat >"\$RUN_DIR/\$SLURM_JOB_ID\.lb\.conf" <<DEPLOY_CONF\n(.*?)^DEPLOY_CONF$',
        script,
        re.M | re.S,
    )
    assert conf, "the lb step writes nginx.conf"
    assert "server 127.0.0.1:8001 max_fails=3" in conf.group(1)
    assert "proxy_set_header Host \\$host;" in conf.group(1)  # nginx's own variable, kept
    lb = _steps(script)["lb"]
    assert "nginx -c \"$RUN_DIR/$SLURM_JOB_ID.lb.conf\" -g 'daemon off;'" in lb
    assert 'wait_http serve-0 "127.0.0.1" 8001 /health' in lb
