"""`deploy bench` end to end: exit codes, the table, JSON, files, and bad input."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner

from orchestrator.bench.report import LEVEL_COLUMNS, REQUEST_COLUMNS
from orchestrator.cli import cli

SMALL = ["--input-len", "4", "--output-len", "4", "--requests", "6"]


def bench(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, ["bench", *args], env=env)


@pytest.fixture
def server(make_server: Any) -> Any:
    return make_server(ttft_ms=5, tpot_ms=1)


def test_table_and_recommendation(server: Any) -> None:
    result = bench("--url", server.url + "/v1/", "--concurrency", "1,2", *SMALL)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["conc", "req/s", "out", "tok/s", "TTFT", "p50", "TTFT", "p90",
                                "TPOT", "p50", "TPOT", "p90", "ITL", "p90", "E2E", "p90",
                                "in-flight", "errors", "note"]  # fmt: skip
    assert [line.split()[0] for line in lines[2:4]] == ["1", "2"]
    assert all(" 0/6" in line for line in lines[2:4])
    assert f"model test-model at {server.url}/v1/completions (latencies in ms)" in lines
    assert any(
        line.startswith(("recommended: concurrency ", "recommended: none")) for line in lines
    )
    assert any(line.startswith("knee: ") for line in lines)


def test_json_is_the_full_record(server: Any) -> None:
    result = bench("--url", server.url, "--concurrency", "1,2", "--slo", "ttft=1000", "--json",
                   "--endpoint", "chat", *SMALL)  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema_version"] == 1
    assert data["endpoint"] == "chat" and data["model"] == "test-model"
    assert data["slo"] == {"ttft_ms": 1000.0, "tpot_ms": None, "e2el_ms": None}
    assert [lv["load"] for lv in data["levels"]] == [1.0, 2.0]
    level = data["levels"][0]
    assert level["requests"] == 6 and level["completed"] == 6
    assert level["slo_attainment"] == 1.0 and level["goodput"] > 0
    assert set(level["ttft_ms"]) == {"count", "mean", "p50", "p90", "p99"}
    assert level["token_source"] == {"usage": 6, "chunks": 0}
    assert set(level["client"]) >= {"cpu_fraction", "loop_lag_p99_ms", "client_bound", "reasons"}
    rec = data["recommendation"]
    # a level is client-bound when a busy neighbour stalls this machine's client; then it
    # must not be recommended, and the report says so
    bound = [lv["load"] for lv in data["levels"] if lv["client"]["client_bound"]]
    assert rec["client_bound_ignored"] == bound
    assert rec["recommended"] in {1.0, 2.0} - set(bound) or (rec["recommended"] is None and bound)
    assert data["recommendation"]["meets_slo"] == [1.0, 2.0]


def test_out_writes_csv_json_plots_and_html(server: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = bench("--url", server.url, "--concurrency", "1,2", "--out", str(out), "--json",
                   *SMALL)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "result.json").read_text()) == json.loads(result.stdout)
    with (out / "levels.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == LEVEL_COLUMNS and [r[0] for r in rows[1:]] == ["1", "2"]
    with (out / "requests.csv").open() as handle:
        requests = list(csv.DictReader(handle))
    assert list(requests[0]) == REQUEST_COLUMNS
    assert sum(1 for r in requests if r["in_window"] == "1") == 12
    assert {r["token_source"] for r in requests} == {"usage"}
    page = (out / "report.html").read_text()
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 5
    for svg in svgs:
        ElementTree.fromstring(svg)  # well-formed
    for external in ("<script", "src=", "href=", "@import", "url("):
        assert external not in page
    for name in ("throughput.png", "latency.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_deployment_name_resolves_through_the_state(server: Any, tmp_path: Path) -> None:
    from orchestrator.state import DeploymentState, StateStore

    StateStore(tmp_path).save(
        DeploymentState(name="demo", specs=[], nodes=[], endpoint_url=server.url)
    )
    result = bench("demo", "--state-dir", str(tmp_path), "--concurrency", "1", "--json", *SMALL)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["url"] == server.url + "/v1/completions"


def test_an_unknown_deployment_is_one_line(tmp_path: Path) -> None:
    result = bench("nope", "--state-dir", str(tmp_path), "--concurrency", "1")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: no deployment named 'nope' in {tmp_path}")
    assert result.stderr.count("\n") == 1


def test_an_unwritable_out_file_is_one_line(server: Any, tmp_path: Path) -> None:
    (tmp_path / "result.json").mkdir()  # stands where the results go
    result = bench("--url", server.url, "--concurrency", "1", "--out", str(tmp_path), *SMALL)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: cannot write the results to {tmp_path / 'result.json'} (Is a directory); "
        "pass a writable --out directory\n"
    )


def test_the_api_key_stays_out_of_the_options_repr() -> None:
    from orchestrator.bench.options import BenchOptions

    options = BenchOptions(base_url="http://127.0.0.1:1", api_key="sk-live-123")
    assert "sk-live-123" not in repr(options)
    assert options.api_key == "sk-live-123"


def test_unreachable_url(free_port: int) -> None:
    result = bench("--url", f"http://127.0.0.1:{free_port}", "--concurrency", "1")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot reach http://127.0.0.1:{free_port}/v1/models")
    assert result.stderr.rstrip().endswith("check the URL and that the server is up")
    assert result.stderr.count("\n") == 1


def test_malformed_dataset_names_the_line(server: Any, tmp_path: Path) -> None:
    dataset = tmp_path / "d.jsonl"
    dataset.write_text('{"prompt": "a"}\n{"prompt": "b", "output_len": "x"}\n')
    result = bench("--url", server.url, "--dataset", str(dataset))
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: dataset {dataset} line 2: 'output_len' must be a positive integer\n"
    )
    assert server.bodies == []  # nothing was sent


def test_a_dataset_drives_the_requests(server: Any, tmp_path: Path) -> None:
    dataset = tmp_path / "d.jsonl"
    dataset.write_text('{"prompt": "one two", "output_len": 3}\n{"prompt": "three", "output_len": 5}\n')  # fmt: skip
    result = bench("--url", server.url, "--dataset", str(dataset), "--concurrency", "1",
                   "--requests", "4", "--warmup", "0", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [b["prompt"] for b in server.bodies] == ["one two", "three"] * 2
    assert [b["max_tokens"] for b in server.bodies] == [3, 5] * 2
    assert json.loads(result.stdout)["levels"][0]["mean_output_tokens"] == 4.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", ""], "--concurrency needs a comma-separated list of levels; e.g. --concurrency 1,2,4"),
        (["--concurrency", "1,,4"], "--concurrency needs a comma-separated list of levels"),
        (["--concurrency", "1,x"], "--concurrency level 'x' is not a whole number; use e.g. --concurrency 1,2,4,8"),
        (["--concurrency", "0"], "--concurrency level 0 must be at least 1"),
        (["--concurrency", "2,2"], "--concurrency repeats a level; list each level once"),
        (["--rate", "fast"], "--rate level 'fast' is not a number; use e.g. --rate 1,2,5,inf"),
        (["--rate", "1", "--concurrency", "1,2"], "with --rate, --concurrency is one cap, not a list"),
        (["--slo", "ttft:5"], "--slo part 'ttft:5' is not NAME=MS; use e.g. --slo ttft=500,tpot=50"),
        (["--requests", "5", "--duration", "3"], "--requests and --duration both given; choose one per level"),
        (["--api-key-env", "BENCH_TEST_UNSET_KEY"], "environment variable BENCH_TEST_UNSET_KEY is not set or empty"),
        (["--input-len", "0"], "--input-len must be at least 1"),
    ],
)  # fmt: skip
def test_bad_options_exit_2(server: Any, args: list[str], message: str) -> None:
    result = bench("--url", server.url, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: " + message)
    assert server.bodies == []


def test_url_and_deployment_are_exclusive(server: Any) -> None:
    both = bench("demo", "--url", server.url)
    neither = bench()
    for result in (both, neither):
        assert result.exit_code == 2
        assert result.stderr.startswith(
            "error: give a deployment name or --url, not both or neither"
        )
    bad_scheme = bench("--url", "localhost:8000")
    assert bad_scheme.exit_code == 2
    assert bad_scheme.stderr == "error: URL 'localhost:8000' must start with http:// or https://\n"


def test_api_key_is_sent_from_the_environment(make_server: Any) -> None:
    server = make_server(ttft_ms=5, tpot_ms=1, api_key="sekret")
    result = bench("--url", server.url, "--api-key-env", "BENCH_KEY", "--concurrency", "1",
                   "--json", *SMALL, env={"BENCH_KEY": "sekret"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["levels"][0]["completed"] == 6
    assert "sekret" not in result.stdout
