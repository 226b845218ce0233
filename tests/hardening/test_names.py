"""Over-long model names and paths are one-line input errors, not OSError tracebacks."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            "a" * 300,
            "error: the model '" + "a" * 60 + "...' has a name part of 300 bytes, over the "
            "255-byte limit of file names; pass a catalog alias, a Hugging Face id or a path "
            "with shorter names\n",
        ),
        (
            "./" + "d/" * 2100,
            "error: the model '" + ("./" + "d/" * 29)[:60] + "...' is 4202 bytes long, over the "
            "4095-byte path limit; pass a catalog alias, a Hugging Face id or a shorter path\n",
        ),
    ],
)
@pytest.mark.parametrize("command", ["plan", "render"])
def test_long_model_names_are_refused_in_one_line(
    command: str, model: str, message: str, tmp_path: object
) -> None:
    args = [command, model, "--gpus", "1xH100-80GB"]
    if command == "render":
        args += ["--out", f"{tmp_path}/out"]
    result = CliRunner().invoke(cli, args)
    assert (result.exit_code, result.stderr) == (2, message)
