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
    no_proxy: bool = False


def resolve_url(deployment: str | None, url: str | None, state_dir: Path | None = None) -> str:
    if (deployment is None) == (url is None):
        raise BenchError(
            "give a deployment name or --url, not both or neither",
            "e.g. deploy bench my-model, or deploy bench --url http://host:8000",
        )
    if url is not None:
        return normalise_url(url)
    assert deployment is not None
    from orchestrator.state import find_endpoint

    return normalise_url(find_endpoint(deployment, state_dir))


def build_options(args: BenchArgs) -> BenchOptions:
    from orchestrator.bench.bounds import check_concurrency, check_lengths, split_credentials

    clean_url, credentials = split_credentials(args.url) if args.url else (None, None)
    base_url = resolve_url(args.deployment, clean_url, args.state_dir)
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
    check_concurrency(concurrency)
    check_lengths(args.input_len, args.output_len)
    api_key = None
    key_env = args.api_key_env or recorded_key_env(args.deployment, args.state_dir)
    if key_env:
        api_key = os.environ.get(key_env)
        if not api_key:
            recorded = "" if args.api_key_env else f"deployment {args.deployment} was started "
            recorded += "" if args.api_key_env else f"with --api-key-env {key_env}, but the "
            raise BenchError(
                f"{recorded}environment variable {key_env} is not set or empty",
                f"export {key_env}=<key>",
            )
    if api_key and credentials is not None:
        raise BenchError(
            "--url carries a user and password and an API key is given too",
            "use one: drop user:password@ from --url, or the API key",
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
        credentials=credentials,
        no_proxy=args.no_proxy,
        slo=slo,
        rule=Rule(min_gain=args.min_gain / 100, max_latency_growth=args.max_latency_growth / 100),
        limits=Limits(
            max_cpu_fraction=args.max_client_cpu / 100, max_loop_lag_p99_ms=args.max_loop_lag_ms
        ),
        seed=args.seed,
        event_loop=args.event_loop,
    )


def recorded_key_env(deployment: str | None, state_dir: Path | None) -> str | None:
    """The API-key variable a deployment was started with (`deploy up --api-key-env`)."""
    if deployment is None:
        return None
    from orchestrator.state import StateStore

    state = StateStore(state_dir).load(deployment)
    request = (state.plan or {}).get("request") if state is not None else None
    value = request.get("api_key_env") if isinstance(request, dict) else None
    return value if isinstance(value, str) and value else None


def run_command(args: BenchArgs) -> str:
    """Run the benchmark; returns what to print on stdout. Raises `BenchFailed` (carrying
    that output) when a level failed."""
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
        from orchestrator.bench.predicted import planned_facts, predictions_for

        result.predicted = predictions_for(args.deployment, args.state_dir, result)
        if result.predicted:
            result.planned = planned_facts(args.deployment, args.state_dir)
    if args.out is not None:
        try:
            write_outputs(result, args.out)
        except OSError as error:
            where = error.filename or args.out
            raise BenchError(
                f"cannot write the results to {where} ({error.strerror or error})",
                "pass a writable --out directory",
            ) from None
    output = to_json(result) if args.as_json else table(result)
    failures = [level.failure for level in result.levels if level.failure is not None]
    if failures:
        from orchestrator.bench.bounds import BenchFailed

        raise BenchFailed(failures, output)
    return output


def write_outputs(result: BenchResult, out: Path) -> list[Path]:
    from orchestrator.bench.plots import write_plots
    from orchestrator.bench.report import to_json, write_csvs

    json_path = out / "result.json"
    json_path.write_text(to_json(result) + "\n")
    return [json_path, *write_csvs(result, out), *write_plots(result, out)]
