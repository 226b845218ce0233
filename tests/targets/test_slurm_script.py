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
    while line[position].startswith("--") or line[position] == "${SHARE[@]}":
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
    assert '--container-mounts="$HF_CACHE:/root/.cache/huggingface,' in pyxis
    apptainer = _steps(_script(tmp_path / "a", "vllm", "1gpu", runtime="apptainer"))["serve_0"]
    assert 'apptainer exec --nv --bind "$HF_CACHE:/root/.cache/huggingface"' in apptainer
    # The node's copy of the image, built once per node by the job's prepare step.
    sif = '"${TMPDIR:-/tmp}/$SLURM_JOB_ID.vllm-vllm-openai-v0.33.0.sif"'
    assert f" {sif} vllm serve meta-llama/Llama-3.1-8B-Instruct" in apptainer
    script = _script(tmp_path / "a2", "vllm", "1gpu", runtime="apptainer")
    assert f"apptainer build --force {sif} docker://vllm/vllm-openai:v0.33.0 || finish 1" in script
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
    # In the container the file is mounted where nginx reads it; on the host nginx is told.
    assert (
        '--container-mounts="$RUN_DIR/$SLURM_JOB_ID.lb.conf:/etc/nginx/nginx.conf:ro" '
        "nginx -g 'daemon off;'"
    ) in lb
    bare = _steps(_script(tmp_path / "b", "vllm", "replicas", runtime="bare-metal"))["lb"]
    assert "nginx -c \"$RUN_DIR/$SLURM_JOB_ID.lb.conf\" -g 'daemon off;'" in bare
    assert 'wait_http serve-0 "127.0.0.1" 8001 /health' in lb


@pytest.mark.parametrize("runtime", ["pyxis", "apptainer"])
def test_mount_sources_are_absolute_and_created_by_the_job(tmp_path: Path, runtime: str) -> None:
    """pyxis and Apptainer refuse a mount source that is not a path, and bash expands no `~`
    inside quotes: every source is a variable the job sets, or absolute; the job creates the
    cache directories on every node before the first step."""
    script = _script(tmp_path, "vllm", "replicas", runtime=runtime)
    assert "~" not in script
    mounts = re.findall(r'--container-mounts="([^"]*)"|--bind "([^"]*)"', script)
    sources = [
        entry.split(":")[0]
        for pair in mounts
        for group in pair
        if group
        for entry in group.split(",")
    ]
    assert sources and all(
        source.startswith(("$HF_CACHE", "$HOST_HOME/", "$RUN_DIR/")) for source in sources
    )
    prepare = script[script.index("prepare_nodes() {") :]
    prepare = prepare[: prepare.index("\n}\n")]
    assert '--nodes="$PLAN_NODES" --ntasks="$PLAN_NODES" --ntasks-per-node=1' in prepare
    for source in {s for s in sources if not s.startswith("$RUN_DIR/")}:
        assert f'"{source}"' in prepare, f"{source} is not created by the job"
    assert script.index("\nprepare_nodes\n") < script.index("\nstart_serve_0\n")


def test_pyxis_steps_run_as_root_with_the_cache_where_they_mount_it(tmp_path: Path) -> None:
    script = _script(tmp_path, "vllm", "replicas")
    steps = _steps(script)
    for name in ("serve_0", "serve_1"):
        body = steps[name]
        assert "--container-remap-root" in body and "--no-container-mount-home" in body
        assert body.lstrip().startswith(
            "step_share 4 8\n  HOME=/root HF_HOME=/root/.cache/huggingface srun"
        )
        assert "--container-env=HOME,HF_HOME" in body
    # The image is imported once per node, into a named container every step then reuses.
    imports = re.findall(r"--container-image=(\S+) --container-name=(\S+) \\", script)
    assert sorted(image for image, _ in imports) == [
        "nginx:1.27-alpine",
        "vllm/vllm-openai:v0.33.0",
    ]
    for image, name in imports:
        users = [body for body in steps.values() if f"--container-image={image} " in body]
        assert users and all(f"--container-name={name} " in body for body in users)


def test_steps_on_one_node_take_disjoint_shares(tmp_path: Path) -> None:
    """Engines take their share of the node's CPUs (and memory) and only that (--exact); the
    CPU-only fronts overlap them."""
    for layout, engines, front in (
        ("replicas", ["serve_0", "serve_1"], "lb"),
        ("pd1node", ["prefill_0", "decode_0"], "router"),
    ):
        steps = _steps(_script(tmp_path / layout, "vllm", layout))
        for name in engines:
            assert "step_share 4 8" in steps[name] and '"${SHARE[@]}" --gres=gpu:4' in steps[name]
            assert "--overlap" not in steps[name]
        assert "--overlap" in steps[front] and "SHARE" not in steps[front]
    script = _script(tmp_path / "x", "vllm", "replicas")
    assert "#SBATCH --mem=0" in script
    assert 'SHARE=(--exact "--cpus-per-task=' in script
