"""Renders are atomic: built beside the target and renamed into place; any OS error is one
line naming the path and the cause (exit 2), and an earlier render is left as it was."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli

RENDER = ["render", "qwen3-8b", "--gpus", "1xH100-80GB"]


def tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under root (and '/' for each directory)."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        found[key] = "/" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def test_a_path_under_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "render"
    result = CliRunner().invoke(cli, [*RENDER, "--out", str(out)])
    assert (result.exit_code, result.stderr) == (
        2,
        f"error: cannot write {out}: {tmp_path / 'file'} is not a directory; "
        "pass a path under a directory\n",
    )


def test_a_dangling_symlink_is_one_line(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    result = CliRunner().invoke(cli, [*RENDER, "--out", str(link)])
    assert (result.exit_code, result.stderr) == (
        2,
        f"error: {link} is a symbolic link to {tmp_path / 'nowhere'}, which does not exist; "
        "create the directory it points to, remove the link, or pass another --out\n",
    )
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


def test_a_symlink_to_a_directory_is_followed_and_kept(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "real")
    result = CliRunner().invoke(cli, [*RENDER, "--out", str(link)])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and (tmp_path / "real" / "local" / "compose.yaml").is_file()
    assert result.stdout.splitlines()[0] == str(link / "plan.json")


def test_a_rerender_keeps_the_users_files_and_leaves_no_temporary_sibling(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert CliRunner().invoke(cli, [*RENDER, "--out", str(out)]).exit_code == 0
    (out / ".env").write_text("KEY=value\n")
    (out / "local" / "notes.txt").write_text("mine\n")
    out.chmod(0o750)
    result = CliRunner().invoke(cli, [*RENDER, "--out", str(out), "--engine-arg", "--seed=3"])
    assert result.exit_code == 0, result.output
    assert (out / ".env").read_text() == "KEY=value\n"
    assert (out / "local" / "notes.txt").read_text() == "mine\n"
    assert "--seed" in (out / "local" / "compose.yaml").read_text()
    assert out.stat().st_mode & 0o777 == 0o750
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]


def test_up_into_an_unwritable_state_directory_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    state = tmp_path / "file" / "state"
    args = ["up", "qwen3-8b", "--gpus", "1xH100-80GB", "--simulate", "--state-dir", str(state)]
    result = CliRunner().invoke(cli, args)
    assert (result.exit_code, result.stderr) == (
        2,
        f"error: cannot write {state / 'qwen3-8b'}: {tmp_path / 'file'} is not a directory; "
        "pass a path under a directory\n",
    )


def in_small_filesystem(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run `script` (sh) in a private mount namespace with a 256 KiB tmpfs at $MNT."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not installed")
    mount = tmp_path / "mnt"
    mount.mkdir()
    deploy = f"{sys.executable} -m orchestrator"
    body = f"set -u\nMNT={mount}\nDEPLOY='{deploy}'\nmount -t tmpfs -o size=256k tmpfs $MNT\n"
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs tmpfs {mount}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private tmpfs here: {probe.stderr.strip()}")
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", body + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_full_disk_leaves_the_earlier_render_intact(tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot"
    done = in_small_filesystem(
        tmp_path,
        f"""
        $DEPLOY {" ".join(RENDER)} --out $MNT/out > /dev/null || exit 90
        cp -a $MNT/out {snapshot}
        head -c 1000000 /dev/zero > $MNT/filler 2> /dev/null
        $DEPLOY {" ".join(RENDER)} --out $MNT/out --engine-arg --seed=3 2> {tmp_path}/err
        echo "rc=$?"
        diff -r $MNT/out {snapshot} && echo same
        ls -A $MNT
        """,
    )
    assert done.stdout.split() == ["rc=2", "same", "filler", "out"], done.stderr
    assert (tmp_path / "err").read_text() == (
        f"error: cannot write {tmp_path / 'mnt' / 'out'}/plan.json: No space left on device; "
        "free some space, or write elsewhere\n"
    )


def test_a_read_only_filesystem_leaves_the_earlier_render_intact(tmp_path: Path) -> None:
    done = in_small_filesystem(
        tmp_path,
        f"""
        $DEPLOY {" ".join(RENDER)} --out $MNT/out > /dev/null || exit 90
        mount -o remount,ro $MNT
        $DEPLOY {" ".join(RENDER)} --out $MNT/out --engine-arg --seed=3 2> {tmp_path}/err
        echo "rc=$?"
        grep -c -- --seed $MNT/out/local/compose.yaml
        """,
    )
    assert done.stdout.split() == ["rc=2", "0"], done.stderr
    assert (tmp_path / "err").read_text() == (
        f"error: cannot write {tmp_path / 'mnt' / 'out'}: Read-only file system; "
        "the file system is read-only: write elsewhere\n"
    )


def test_an_over_long_out_name_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / ("o" * 300)
    result = CliRunner().invoke(cli, [*RENDER, "--out", str(out)])
    assert (result.exit_code, result.stderr) == (
        2,
        f"error: cannot write {out}: File name too long; use a shorter path or name\n",
    )
