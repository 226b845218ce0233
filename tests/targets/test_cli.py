"""`deploy render --target`, and the target settings a cluster file carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestrator.cli import cli

CLUSTER = """\
name: two-gpu-nodes
fabric: infiniband
defaults:
  gpus: 8xH100-80GB-SXM
  network_interface: ib0
  rdma_devices: [mlx5_0, mlx5_1]
nodes:
  - {name: gpu-a, address: 10.0.0.1}
  - {name: gpu-b, address: 10.0.0.2}
kubernetes:
  namespace: llm
  host_network: true
  hf_cache: {pvc: weights}
slurm:
  partition: h100
  time_limit: "2-00:00:00"
  account: inference
"""


def _cluster(tmp_path: Path, text: str = CLUSTER) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return path


def test_render_k8s_writes_the_manifests(cli_runner: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["render", "llama-3.1-405b", "--cluster", str(_cluster(tmp_path)), "--target", "k8s"]
    result = cli_runner.invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        str(out / "plan.json"),
        str(out / "k8s" / "00-namespace.yaml"),
        str(out / "k8s" / "10-serve-0.yaml"),
    ]
    documents = yaml.safe_load_all((out / "k8s" / "10-serve-0.yaml").read_text())
    [lws] = [doc for doc in documents if doc["kind"] == "LeaderWorkerSet"]
    assert lws["metadata"]["namespace"] == "llm"
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    pod = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]
    assert pod["hostNetwork"] is True
    assert {"name": "hf-cache", "persistentVolumeClaim": {"claimName": "weights"}} in pod["volumes"]
    # A re-render into the same directory replaces the files; --namespace overrides the file.
    again = cli_runner.invoke(cli, [*args, "--out", str(out), "--namespace", "default"])
    assert again.exit_code == 0
    assert sorted(path.name for path in (out / "k8s").iterdir()) == [
        ".deploy-files",
        "10-serve-0.yaml",
    ]


def test_render_slurm_takes_the_cluster_files_settings(cli_runner: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli_runner.invoke(
        cli,
        [
            "render",
            "llama-3.1-405b",
            "--cluster",
            str(_cluster(tmp_path)),
            "--target",
            "slurm",
            "--out",
            str(out),
            "--time-limit",
            "12:00:00",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [str(out / "plan.json"), str(out / "slurm" / "job.sbatch")]
    directives = [
        line
        for line in (out / "slurm" / "job.sbatch").read_text().splitlines()
        if line.startswith("#SBATCH")
    ]
    assert directives == [
        "#SBATCH --job-name=llama-3-1-405b",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --time=12:00:00",
        "#SBATCH --output=llama-3-1-405b-%j.out",
        "#SBATCH --requeue",
        "#SBATCH --partition=h100",
        "#SBATCH --account=inference",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --exclusive",
        "#SBATCH --mem=0",
    ]


def test_a_bad_setting_is_one_line_and_exit_2(cli_runner: Any, tmp_path: Path) -> None:
    cluster = _cluster(tmp_path, CLUSTER.replace("runtime: pyxis", "") + "  runtime: docker\n")
    result = cli_runner.invoke(
        cli,
        [
            "render",
            "llama-3.1-405b",
            "--cluster",
            str(cluster),
            "--target",
            "slurm",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 2
    assert result.output == (
        f"error: {cluster}: target setting slurm.runtime: Input should be 'pyxis', "
        "'apptainer' or 'bare-metal'; fix the `kubernetes:`/`slurm:` section or the option\n"
    )


def test_a_foreign_directory_is_refused(cli_runner: Any, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = cli_runner.invoke(
        cli, ["render", "qwen3-8b", "--gpus", "1xH100", "--target", "k8s", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.output == (
        f"error: {tmp_path} is not empty and holds no earlier render (no deploy plan.json); "
        "pass a new or empty directory to --out\n"
    )


def test_slurm_commands_without_a_job(cli_runner: Any, tmp_path: Path) -> None:
    state = ["--state-dir", str(tmp_path), "--target", "slurm"]
    watch = cli_runner.invoke(cli, ["up", "qwen3-8b", "--gpus", "1xH100", "--watch", *state])
    assert watch.exit_code == 2
    assert watch.output == (
        "error: --watch supervises compose deployments; Slurm supervises its own jobs; drop "
        "--watch, and follow the job with `deploy logs --target slurm -f`\n"
    )
    status = cli_runner.invoke(cli, ["status", *state])
    assert (status.exit_code, status.output) == (0, "no Slurm deployments\n")
    down = cli_runner.invoke(cli, ["down", "--name", "absent", *state])
    assert (down.exit_code, down.output) == (0, "nothing to remove for absent\n")
    logs = cli_runner.invoke(cli, ["logs", "--name", "absent", *state])
    assert logs.exit_code == 2
    assert logs.output == (
        f"error: no Slurm deployment named 'absent' in {tmp_path / 'slurm'}; start it with "
        "`deploy up --target slurm`, or pass --state-dir\n"
    )
