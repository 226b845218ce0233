"""Counts, sizes and numbers are bounded: a one-line error (exit 2) in bounded time and memory,
for every numeric option of every command, for node and GPU counts and for dataset reads."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from orchestrator.cli import COMMANDS, cli
from orchestrator.cli.bounds import LIMITS_ATTRIBUTE, is_numeric

# What a refused input may cost: far below what the unbounded code reached (gigabytes).
MEMORY_LIMIT = 1536 * 2**20
TIME_LIMIT_S = 60.0


def _run(*args: str) -> tuple[int, str, float]:
    """`deploy ARGS` in its own process under an address-space limit."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    started = time.monotonic()
    process = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT_S,
        preexec_fn=limit,
        check=False,
    )
    return process.returncode, process.stderr, time.monotonic() - started


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr[-2000:]
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["plan", "llama-3.1-8b", "--gpus", "8xH100", "--nodes", "1000000000"], "256"),
        (["plan", "llama-3.1-8b", "--gpus", "100000xH100"], "100000 GPUs per node"),
        (["plan", "llama-3.1-8b", "--gpus", "9" * 5000 + "xH100"], "GPUs per node"),
        (["doctor", "deepseek-r1", "--gpus", "100000xH100", "--nodes", "2"], "over the limit"),
        (["plan", "llama-3.1-8b", "--gpus", "8xH100", "--download-rate", "nan"], "finite"),
        (["plan", "llama-3.1-8b", "--gpus", "8xH100", "--request-rate", "inf"], "finite"),
        (["plan", "llama-3.1-8b", "--gpus", "8xH100", "--slo", "ttft=nan"], "finite"),
        (["plan", "llama-3.1-8b", "--gpus", "8xH100", "--slo", "tpot=infms"], "finite"),
        (["bench", "--url", "http://127.0.0.1:9", "--slo", "ttft=inf"], "finite"),
        (["bench", "--url", "http://127.0.0.1:9", "--dataset", "/dev/zero"], "longer than"),
    ],
)
def test_huge_and_non_finite_inputs_are_one_line_errors(args: list[str], words: str) -> None:
    code, stderr, elapsed = _run(*args)
    line = _one_line_error(stderr)
    assert code == 2, stderr
    assert words in line
    assert elapsed < TIME_LIMIT_S


def test_a_cluster_file_with_too_many_nodes_is_refused(tmp_path: Path) -> None:
    nodes = "".join(
        f"  - {{name: n{i}, address: 10.0.{i // 250}.{i % 250 + 1}}}\n" for i in range(300)
    )
    cluster = tmp_path / "big.yaml"
    cluster.write_text(
        f"name: big\nfabric: ethernet\ndefaults: {{gpus: 8xH100}}\nnodes:\n{nodes}",
        encoding="utf-8",
    )
    code, stderr, _ = _run("plan", "llama-3.1-8b", "--cluster", str(cluster))
    assert code == 2, stderr
    assert "300 nodes, over the limit of 256" in _one_line_error(stderr)


def test_a_dataset_over_the_size_cap_is_refused_after_a_bounded_read(tmp_path: Path) -> None:
    from orchestrator.bench import workload
    from orchestrator.errors import BenchError

    line = b'{"prompt": "' + b"word " * 1000 + b'"}\n'
    dataset = tmp_path / "big.jsonl"
    with dataset.open("wb") as handle:
        for _ in range(workload.MAX_DATASET_BYTES // len(line) + 2):
            handle.write(line)
    with pytest.raises(BenchError, match="larger than 256 MiB"):
        workload.load_dataset(dataset, 16)
    # Bytes that are not UTF-8 name their line.
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b'{"prompt": "a"}\n{"prompt": "\xff"}\n')
    with pytest.raises(BenchError, match="line 2 is not UTF-8"):
        workload.load_dataset(broken, 16)


def _numeric_options() -> Iterator[tuple[list[str], click.Command, click.Option]]:
    context = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(context, name)
        assert command is not None
        yield from _walk([name], command)


def _walk(
    path: list[str], command: click.Command
) -> Iterator[tuple[list[str], click.Command, click.Option]]:
    if isinstance(command, click.Group):
        for sub_name, sub in command.commands.items():
            yield from _walk([*path, sub_name], sub)
        return
    for param in command.params:
        if isinstance(param, click.Option) and is_numeric(param.type):
            yield path, command, param


NUMERIC = list(_numeric_options())


def test_the_sweep_sees_the_numeric_options_of_every_command() -> None:
    seen = {(path[0], param.name) for path, _, param in NUMERIC}
    for expected in [
        ("plan", "nodes"),
        ("plan", "download_rate"),
        ("render", "tp"),
        ("up", "timeout"),
        ("up", "restart_window"),
        ("doctor", "context"),
        ("bench", "duration"),
        ("bench", "seed"),
        ("logs", "tail"),
        ("sim", "ttft_ms"),
    ]:
        assert expected in seen
    for path, _, param in NUMERIC:
        _, high = getattr(param, LIMITS_ATTRIBUTE)
        assert high is not None, (path, param.name)


@pytest.mark.parametrize(
    ("path", "param"),
    [(path, param) for path, _, param in NUMERIC],
    ids=[f"{' '.join(path)} {param.opts[0]}" for path, _, param in NUMERIC],
)
def test_every_numeric_option_refuses_nan_inf_and_huge_values(
    path: list[str], param: click.Option
) -> None:
    command = NUMERIC[[p for p, _, o in NUMERIC].index(path)][1]
    positional = ["x" for p in command.params if isinstance(p, click.Argument) and p.required]
    floats = isinstance(param.type, click.types.FloatParamType)
    values = ["nan", "inf", "-inf", "1e308"] if floats else ["99999999999999999999", "1" * 5000]
    for value in values:
        result = CliRunner().invoke(cli, [*path, *positional, param.opts[0], f"{value}"])
        assert result.exit_code == 2, (value, result.output)
        line = _one_line_error(result.stderr)
        assert param.opts[0] in line, line


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_of_every_command_still_renders(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    paths = [[name, sub] for sub in command.commands] if isinstance(command, click.Group) else []
    for path in paths or [[name]]:
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
