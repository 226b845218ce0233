"""`deploy bench`: turn the command's raw options into a run and its outputs."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.bench.metrics import Slo
from orchestrator.bench.options import (
    DEFAULT_CONCURRENCY,
    BenchOptions,
    normalise_url,
    parse_levels,
    parse_rates,
    parse_slo,
)
from orchestrator.bench.recommend import Rule
from orchestrator.bench.selfcheck import Limits
from orchestrator.errors import BenchError

if TYPE_CHECKING:
    from orchestrator.bench.runner import BenchResult


@dataclass(frozen=True)
class BenchArgs:
    """The command line as given."""

    deployment: str | None
    url: str | None
    model: str | None
    endpoint: str
    concurrency: str | None
    rate: str | None
    input_len: int | None
    output_len: int | None
    dataset: Path | None
    requests: int | None
    duration: float | None
    warmup: int | None
    drain_timeout: float
    timeout: float
    slo: str | None
    ignore_eos: bool
    api_key_env: str | None
    min_gain: float
    max_latency_growth: float
    as_json: bool
    out: Path | None
    seed: int
    state_dir: Path | None = None
    max_loop_lag_ms: float = 5.0
    max_client_cpu: float = 90.0
    event_loop: str = "asyncio"


def resolve_url(deployment: str | None, url: str | None, state_dir: Path | None = None) -> str:
    if (deployment is None) == (url is None):
        raise BenchError(
            "give a deployment name or --url, not both or neither",
            "e.g. deploy bench my-model, or deploy bench --url http://host:8000",
        )
    if url is not None:
        return normalise_url(url)
    assert deployment is not None
    from orchestrator.runtime.state import find_endpoint

    return normalise_url(find_endpoint(deployment, state_dir))


def build_options(args: BenchArgs) -> BenchOptions:
    base_url = resolve_url(args.deployment, args.url, args.state_dir)
    if args.requests is not None and args.duration is not None:
        raise BenchError("--requests and --duration both given", "choose one per level")
    if args.requests is not None and args.requests < 1:
        raise BenchError("--requests must be at least 1")
    if args.duration is not None and not args.duration > 0:
        raise BenchError("--duration must be above 0 seconds")
    if args.dataset is not None and args.input_len is not None:
        raise BenchError(
            "--dataset and --input-len both given", "the dataset's prompts set the input length"
        )
    rates = parse_rates(args.rate) if args.rate is not None else ()
    if rates:
        concurrency = (
            parse_levels(args.concurrency, "--concurrency") if args.concurrency is not None else ()
        )
        if len(concurrency) > 1:
            raise BenchError(
                "with --rate, --concurrency is one cap, not a list",
                "sweep rates with --rate, or drop --rate to sweep concurrency",
            )
        if args.duration is not None and any(r == float("inf") for r in rates) and not concurrency:
            raise BenchError(
                "--rate inf with --duration and no --concurrency cap never stops",
                "use --requests, or add --concurrency N",
            )
    else:
        text = DEFAULT_CONCURRENCY if args.concurrency is None else args.concurrency
        concurrency = parse_levels(text, "--concurrency")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise BenchError(
                f"environment variable {args.api_key_env} is not set or empty",
                f"export {args.api_key_env}=<key>",
            )
    for name, value in (("--input-len", args.input_len), ("--output-len", args.output_len)):
        if value is not None and value < 1:
            raise BenchError(f"{name} must be at least 1")
    if args.warmup is not None and args.warmup < 0:
        raise BenchError("--warmup must be 0 or more requests")
    if not (args.drain_timeout > 0 and args.timeout > 0):
        raise BenchError("--drain-timeout and --timeout must be above 0 seconds")
    if not (args.max_loop_lag_ms > 0 and args.max_client_cpu > 0):
        raise BenchError("--max-loop-lag-ms and --max-client-cpu must be above 0")
    slo: Slo = parse_slo(args.slo)
    return BenchOptions(
        base_url=base_url,
        model=args.model,
        endpoint=args.endpoint,
        concurrency=concurrency,
        rates=rates,
        input_len=args.input_len or 1024,
        output_len=args.output_len or 128,
        dataset=args.dataset,
        requests=args.requests,
        duration=args.duration,
        warmup=args.warmup,
        drain_timeout=args.drain_timeout,
        request_timeout=args.timeout,
        ignore_eos=args.ignore_eos,
        api_key=api_key,
        slo=slo,
        rule=Rule(min_gain=args.min_gain / 100, max_latency_growth=args.max_latency_growth / 100),
        limits=Limits(
            max_cpu_fraction=args.max_client_cpu / 100, max_loop_lag_p99_ms=args.max_loop_lag_ms
        ),
        seed=args.seed,
        event_loop=args.event_loop,
    )


def run_command(args: BenchArgs) -> str:
    """Run the benchmark; returns what to print on stdout."""
    from orchestrator.bench.report import table, to_json
    from orchestrator.bench.runner import run_bench

    options = build_options(args)
    if args.out is not None:
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BenchError(f"cannot create --out {args.out}: {error.strerror}") from None
    if not args.as_json and sys.stdout.isatty():
        from orchestrator.bench.progress import LiveProgress

        with LiveProgress() as live:
            result = run_bench(options, live)
    else:
        result = run_bench(options)
    if args.deployment is not None:
        from orchestrator.bench.predicted import predictions_for

        result.predicted = predictions_for(args.deployment, args.state_dir, result)
    if args.out is not None:
        try:
            write_outputs(result, args.out)
        except OSError as error:
            where = error.filename or args.out
            raise BenchError(
                f"cannot write the results to {where} ({error.strerror or error})",
                "pass a writable --out directory",
            ) from None
    return to_json(result) if args.as_json else table(result)


def write_outputs(result: BenchResult, out: Path) -> list[Path]:
    from orchestrator.bench.plots import write_plots
    from orchestrator.bench.report import to_json, write_csvs

    json_path = out / "result.json"
    json_path.write_text(to_json(result) + "\n")
    return [json_path, *write_csvs(result, out), *write_plots(result, out)]
