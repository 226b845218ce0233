"""The loopback Hub and a `deploy` runner that points the real huggingface_hub client at it.

`huggingface_hub` reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE when it is imported, so every
command runs in its own `deploy` process with the environment a user would set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .fakehub import FakeHub

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S = 120


# `deploy` as `python -m orchestrator` runs it, noting at exit whether the Hub client was loaded.
_DEPLOY_NOTING_THE_CLIENT = (
    "import atexit, sys\n"
    "note = sys.argv.pop(1)\n"
    "def write_note():\n"
    "    with open(note, 'w') as out:\n"
    "        out.write(str('huggingface_hub' in sys.modules))\n"
    "atexit.register(write_note)\n"
    "sys.argv[0] = 'deploy'\n"
    "from orchestrator.cli import main\n"
    "main()\n"
)


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str
    # Whether the command imported huggingface_hub.
    client_imported: bool


Runner = Callable[..., Result]


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    with FakeHub() as server:
        yield server


@pytest.fixture
def deploy(hub: FakeHub, tmp_path: Path) -> Runner:
    """Run `deploy ARGS` against the fake Hub with a fresh HF cache (per test)."""
    hf_home = tmp_path / "hf-home"

    def run(
        *args: str, offline: bool = False, token: str | None = None, endpoint: str | None = None
    ) -> Result:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("HF_", "HUGGING_FACE"))
            and key not in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
        }
        env.update(
            HF_ENDPOINT=endpoint or hub.url,
            HF_HOME=str(hf_home),
            XDG_CACHE_HOME=str(tmp_path / "xdg-cache"),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_ETAG_TIMEOUT="30",
            NO_PROXY="127.0.0.1,localhost",
        )
        if offline:
            env["HF_HUB_OFFLINE"] = "1"
        if token is not None:
            env["HF_TOKEN"] = token
        note = tmp_path / "client-imported"
        note.unlink(missing_ok=True)
        completed = subprocess.run(
            [sys.executable, "-c", _DEPLOY_NOTING_THE_CLIENT, str(note), *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        imported = note.read_text() == "True"
        return Result(completed.returncode, completed.stdout, completed.stderr, imported)

    return run
