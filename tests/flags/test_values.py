"""Engine-flag values against what the engine's converter accepts (types from the schemas)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from orchestrator.engines.flags import CheckedArgv, check_against, schema_from_dict

Accept = Callable[[str, str, Sequence[str]], CheckedArgv]
Reject = Callable[[str, str, Sequence[str]], str]

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.mark.parametrize(
    ("engine", "version", "argv", "message"),
    [
        (
            "vllm",
            "0.33.0",
            ["m", "--max-model-len=abc"],
            "--max-model-len abc is not accepted by vllm 0.33.0; it takes an integer, "
            "e.g. 32768 or 32k, or 'auto'",
        ),
        (
            "vllm",
            "0.32.0",
            ["m", "--max-num-seqs", "1.5"],
            "--max-num-seqs 1.5 is not accepted by vllm 0.32.0; it takes an integer, e.g. 8",
        ),
        (
            "vllm",
            "0.33.0",
            ["m", "--gpu-memory-utilization", "most"],
            "--gpu-memory-utilization most is not accepted by vllm 0.33.0; it takes a number, "
            "e.g. 0.9",
        ),
        (
            "sglang",
            "0.5.23",
            ["--model-path", "m", "--context-length", "abc"],
            "--context-length abc is not accepted by sglang 0.5.23; it takes an integer, "
            "e.g. 32768 or 32k",
        ),
        (
            "sglang",
            "0.5.21",
            ["--model-path", "m", "--tokenizer-mode=bogus"],
            "--tokenizer-mode bogus is not accepted by sglang 0.5.21; choices: auto, slow",
        ),
    ],
)
def test_bad_values_are_refused_with_what_is_accepted(
    rejected: Reject, engine: str, version: str, argv: list[str], message: str
) -> None:
    assert rejected(engine, version, argv) == message


@pytest.mark.parametrize(
    "argv",
    [
        ["m", "--max-model-len", "32768"],
        ["m", "--max-model-len=32k"],
        ["m", "--max-model-len=25.6k"],
        ["m", "--max-model-len=1M"],
        ["m", "--max-model-len", "auto"],
        ["m", "--max-model-len", "-1"],
        ["m", "--max-log-len", "None"],
        ["m", "--gpu-memory-utilization", "0.85"],
        ["m", "--gpu-memory-utilization", "1"],
        ["m", "-tp", "2"],
    ],
)
def test_values_the_converters_take_pass(accepted: Accept, argv: list[str]) -> None:
    assert accepted("vllm", "0.33.0", argv).positionals == ("m",)


def test_the_generator_records_what_each_converter_takes() -> None:
    sys.path.insert(0, str(SCRIPTS))
    try:
        from flagschema.dump import dump_parser
    finally:
        sys.path.remove(str(SCRIPTS))

    def readable(value: str) -> int:
        match = re.fullmatch(r"(\d+)k", value)
        return int(match.group(1)) * 1000 if match else int(value)

    def optional_int(value: str) -> int | None:
        return None if value in ("", "None") else int(value)

    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int)
    parser.add_argument("--maybe", type=optional_int)
    parser.add_argument("--length", type=readable)
    parser.add_argument("--ratio", type=float)
    parser.add_argument("--name")
    raw = dump_parser(parser, engine="fake", version="1.0.0", entry_point="fake", generated_by="t")
    options = {item["flags"][0]: item for item in raw["options"]}
    assert options["--count"]["value"] == "int" and "value_words" not in options["--count"]
    assert (options["--maybe"]["value"], options["--maybe"]["value_words"]) == ("int", ["", "None"])
    assert options["--length"]["value"] == "human_int"
    assert options["--ratio"]["value"] == "float"
    assert "value" not in options["--name"]
    schema = schema_from_dict(raw)
    assert check_against(schema, ["--maybe", "None", "--length", "4k", "--name", "x"])
    with pytest.raises(Exception, match=r"^--ratio high is not accepted by fake 1\.0\.0"):
        check_against(schema, ["--ratio", "high"])
