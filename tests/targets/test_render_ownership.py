"""`render --target k8s|slurm` replaces only what an earlier render of that target wrote: the
files listed in the target directory's manifest and plan.json. The user's files stay, a link
is never followed out of the directory, a plan.json that is not deploy's is not an earlier
render, and a full disk leaves the earlier render as it was with a one-line error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import cli
from tests.hardening.test_atomic_render import in_small_filesystem, tree

from .conftest import render

RENDER = ["render", "qwen3-8b", "--gpus", "1xH100-80GB"]


def _render(cli_runner: Any, target: str, out: Path, *extra: str) -> Any:
    return cli_runner.invoke(cli, [*RENDER, "--target", target, "--out", str(out), *extra])


@pytest.mark.parametrize("target", ["k8s", "slurm"])
def test_the_users_files_beside_the_render_are_kept(
    cli_runner: Any, tmp_path: Path, target: str
) -> None:
    out = tmp_path / "out"
    assert _render(cli_runner, target, out).exit_code == 0
    mine = {
        out / target / "extra.yaml": "kind: Mine\n",
        out / target / "site.sbatch": "#!/bin/bash\n",
        out / "notes.md": "mine\n",
    }
    for path, text in mine.items():
        path.write_text(text)
    result = _render(cli_runner, target, out, "--engine-arg", "--seed=3")
    assert result.exit_code == 0, result.output
    for path, text in mine.items():
        assert path.read_text() == text, f"{path.name} was not kept"
    rendered = "".join(
        p.read_text() for p in (out / target).iterdir() if p.suffix in {".yaml", ".sbatch"}
    )
    assert "--seed" in rendered
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "a temporary sibling was left"


def test_a_file_the_earlier_render_wrote_and_this_one_does_not_is_removed(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    render("k8s", "vllm", "replicas", out)
    assert (out / "k8s" / "20-lb.yaml").is_file()
    render("k8s", "vllm", "1gpu", out)
    assert not (out / "k8s" / "20-lb.yaml").exists()
    assert (out / "k8s" / "10-serve-0.yaml").is_file()


def test_a_linked_target_directory_is_not_followed(cli_runner: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _render(cli_runner, "k8s", out).exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "10-serve-0.yaml").write_text("# Rendered by deploy: deployment x\nmine\n")
    (elsewhere / "app.yaml").write_text("mine\n")
    before = tree(elsewhere)
    for path in (out / "k8s").iterdir():
        path.unlink()
    (out / "k8s").rmdir()
    (out / "k8s").symlink_to(elsewhere)
    result = _render(cli_runner, "k8s", out)
    assert result.exit_code == 2
    assert result.output == (
        f"error: {out / 'k8s'} is not a directory deploy wrote (a link or a file); "
        "move it away, or pass another --out\n"
    )
    assert tree(elsewhere) == before


def test_a_linked_file_in_the_target_directory_is_replaced_not_written_through(
    cli_runner: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert _render(cli_runner, "slurm", out).exit_code == 0
    victim = tmp_path / "victim.sh"
    victim.write_text("precious\n")
    (out / "slurm" / "job.sbatch").unlink()
    (out / "slurm" / "job.sbatch").symlink_to(victim)
    assert _render(cli_runner, "slurm", out).exit_code == 0
    assert victim.read_text() == "precious\n"
    assert not (out / "slurm" / "job.sbatch").is_symlink()


@pytest.mark.parametrize("target", ["k8s", "slurm"])
def test_a_foreign_plan_json_is_not_an_earlier_render(
    cli_runner: Any, tmp_path: Path, target: str
) -> None:
    (tmp_path / "plan.json").write_text('{"steps": ["mine"]}\n')
    (tmp_path / target).mkdir()
    (tmp_path / target / "app.yaml").write_text("mine\n")
    (tmp_path / target / "job.sbatch").write_text("mine\n")
    result = _render(cli_runner, target, tmp_path)
    assert result.exit_code == 2
    assert result.output == (
        f"error: {tmp_path} is not empty and holds no earlier render (no deploy plan.json); "
        "pass a new or empty directory to --out\n"
    )
    assert (tmp_path / "plan.json").read_text() == '{"steps": ["mine"]}\n'
    assert (tmp_path / target / "app.yaml").read_text() == "mine\n"
    assert (tmp_path / target / "job.sbatch").read_text() == "mine\n"


@pytest.mark.parametrize("target", ["k8s", "slurm"])
def test_a_full_disk_leaves_the_earlier_render_intact(tmp_path: Path, target: str) -> None:
    snapshot = tmp_path / "snapshot"
    args = " ".join([*RENDER, "--target", target])
    done = in_small_filesystem(
        tmp_path,
        f"""
        $DEPLOY {args} --out $MNT/out > /dev/null || exit 90
        cp -a $MNT/out {snapshot}
        head -c 1000000 /dev/zero > $MNT/filler 2> /dev/null
        $DEPLOY {args} --out $MNT/out --engine-arg --seed=3 2> {tmp_path}/err
        echo "rc=$?"
        diff -r $MNT/out {snapshot} && echo same
        ls -A $MNT
        """,
    )
    assert done.stdout.split() == ["rc=2", "same", "filler", "out"], done.stderr
    error = (tmp_path / "err").read_text()
    assert error.startswith(f"error: cannot write {tmp_path / 'mnt' / 'out'}"), error
    assert error.endswith(": No space left on device; free some space, or write elsewhere\n")
    assert error.count("\n") == 1
