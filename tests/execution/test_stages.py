"""The stages every command shares (orchestrator/execution.py), through the real click root:
a plan that does not fit is refused by every command that renders or starts it, a user's
engine flag is checked when planning, and one deployment-name rule holds for every command.

None of these touch Docker: each refusal comes before anything is written or started."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator import execution
from orchestrator.cli import cli
from orchestrator.errors import FlagError, PlanError
from orchestrator.planning.request import PlanRequest

TOO_SMALL = ["llama-3.1-70b", "--gpus", "1xL4"]
NOT_FIT = "error: llama-3.1-70b does not fit the planned hardware; fits on "


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    "extra",
    [
        ["up", "--simulate"],
        ["up", "--simulate", "--dry-run"],
        ["up", "--dry-run"],
        ["up", "--simulate", "--target", "slurm", "--dry-run"],
        ["render", "--simulate"],
        ["render", "--target", "k8s"],
        ["render", "--target", "slurm"],
        ["doctor", "--simulate"],
    ],
)
def test_every_command_that_renders_or_starts_refuses_a_plan_that_does_not_fit(
    tmp_path: Path, extra: list[str]
) -> None:
    command, *flags = extra
    where = ["--out", str(tmp_path / "out")] if command == "render" else []
    state = ["--state-dir", str(tmp_path / "state")] if command == "up" else []
    code, out, err = run(command, *TOO_SMALL, *flags, *where, *state)
    assert code == 2, (out, err)
    assert err.startswith(NOT_FIT)
    assert err.count("\n") == 1  # one line, no traceback
    assert out == ""
    assert not (tmp_path / "out").exists()  # nothing written
    assert not (tmp_path / "state").exists()  # no state, no files, nothing started


def test_plan_still_prints_a_plan_that_does_not_fit() -> None:
    code, out, _ = run("plan", *TOO_SMALL)
    assert code == 2
    assert "DOES NOT FIT" in out


def test_check_fit_is_the_stage_every_command_uses() -> None:
    planned = execution.plan(PlanRequest(model="llama-3.1-70b", gpus="1xL4"))
    with pytest.raises(PlanError, match="does not fit the planned hardware") as caught:
        execution.check_fit(planned)
    assert caught.value.exit_code == 2
    execution.check_fit(execution.plan(PlanRequest(model="qwen3-8b", gpus="1xH100")))


def test_plan_refuses_an_engine_flag_its_version_does_not_know() -> None:
    code, out, err = run("plan", "qwen3-8b", "--gpus", "1xH100", "--engine-arg", "--bogus-flag")
    assert code == 2
    assert out == ""
    assert err == "error: --bogus-flag is not a flag of vllm 0.33.0\n"


def test_plan_names_the_nearest_flag_for_a_typo() -> None:
    code, _, err = run("plan", "qwen3-8b", "--gpus", "1xH100", "--engine-arg", "--max-num-seqz=64")
    assert code == 2
    assert err == (
        "error: --max-num-seqz is not a flag of vllm 0.33.0; did you mean --max-num-seqs?\n"
    )


def test_plan_checks_engine_flags_against_the_chosen_engine() -> None:
    code, _, err = run(
        "plan",
        "qwen3-8b",
        "--gpus",
        "1xH100",
        "--engine",
        "sglang",
        "--engine-arg",
        "--max-num-seqs=64",
    )
    assert code == 2
    assert err.startswith("error: --max-num-seqs is not a flag of sglang 0.5.23")


def test_a_known_engine_flag_plans() -> None:
    code, _, err = run(
        "plan",
        "qwen3-8b",
        "--gpus",
        "1xH100",
        "--engine-arg",
        "--max-num-seqs",
        "--engine-arg",
        "64",
    )
    assert code == 0, err
    planned = execution.plan(
        PlanRequest(model="qwen3-8b", gpus="1xH100", engine_args=["--max-num-seqs=64"])
    )
    assert planned.request.engine_args == ["--max-num-seqs=64"]
    with pytest.raises(FlagError):
        execution.plan(PlanRequest(model="qwen3-8b", gpus="1xH100", engine_args=["--nope"]))


NAME_ERROR = (
    "error: --name 'My_Deploy' is not a DNS label (lowercase letters, digits and '-', at most "
    "63 characters, no leading or trailing '-'); try --name my-deploy\n"
)


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "qwen3-8b", "--gpus", "1xH100"],
        ["doctor", "qwen3-8b", "--gpus", "1xH100", "--simulate"],
        ["render", "qwen3-8b", "--gpus", "1xH100", "--out", "{tmp}/out"],
        ["up", "qwen3-8b", "--gpus", "1xH100", "--dry-run", "--state-dir", "{tmp}/state"],
        ["up", "qwen3-8b", "--gpus", "1xH100", "--simulate", "--state-dir", "{tmp}/state"],
        ["status", "--state-dir", "{tmp}/state"],
        ["logs", "--state-dir", "{tmp}/state"],
        ["down", "--state-dir", "{tmp}/state"],
        ["status", "--target", "slurm", "--state-dir", "{tmp}/state"],
        ["down", "--target", "slurm", "--state-dir", "{tmp}/state"],
    ],
)
def test_one_name_rule_for_every_command(tmp_path: Path, args: list[str]) -> None:
    filled = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    code, out, err = run(*filled, "--name", "My_Deploy")
    assert (code, out, err) == (2, "", NAME_ERROR)
    assert list(tmp_path.iterdir()) == []


def test_state_files_follow_the_same_rule(tmp_path: Path) -> None:
    from orchestrator.errors import InputError
    from orchestrator.state import StateStore

    with pytest.raises(InputError, match="is not a DNS label"):
        StateStore(tmp_path).path("My_Deploy")
    assert StateStore(tmp_path).path("my-deploy") == tmp_path / "my-deploy.json"
