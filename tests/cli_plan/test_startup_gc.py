"""`deploy`'s entry point pauses the cyclic GC while it imports, and resumes it before a command runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

PROBE = """\
import gc

import click


@click.command()
def probe() -> None:
    click.echo(f"enabled={gc.isenabled()} frozen={gc.get_freeze_count() > 0}")
"""


def _run_probe(tmp_path: Path, prelude: str) -> str:
    (tmp_path / "gc_probe.py").write_text(PROBE)
    code = (
        f"{prelude}\n"
        "import sys\n"
        "from orchestrator import cli\n"
        "cli.COMMANDS['probe'] = ('gc_probe', 'probe', 'report the GC state')\n"
        "sys.argv = ['deploy', 'probe']\n"
        "cli.main()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO_ROOT)])}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_command_runs_with_the_gc_on_and_start_up_objects_frozen(tmp_path: Path) -> None:
    assert _run_probe(tmp_path, "") == "enabled=True frozen=True"


def test_a_caller_that_turned_the_gc_off_keeps_it_off(tmp_path: Path) -> None:
    assert _run_probe(tmp_path, "import gc; gc.disable()") == "enabled=False frozen=False"
