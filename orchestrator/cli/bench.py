"""`deploy bench`: throughput and latency against load, and the concurrency to run at."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.options import json_option


@click.command("bench")
@click.argument("deployment", required=False)
@click.option("--url", help="Base URL of an OpenAI-compatible server (instead of a deployment).")
@click.option("--model", help="Model name to request (default: the first of /v1/models).")
@click.option(
    "--endpoint",
    type=click.Choice(["completions", "chat"]),
    default="completions",
    show_default=True,
    help="/v1/completions or /v1/chat/completions.",
)
@click.option(
    "--concurrency",
    metavar="N,N,...",
    help="Closed-loop levels (default 1,2,4,8,16,32,64); with --rate, one cap.",
)
@click.option(
    "--rate",
    metavar="R,R,...",
    help="Open-loop sweep: Poisson arrivals per second (inf: all at once).",
)
@click.option("--input-len", type=int, help="Synthetic prompt length in tokens (default 1024).")
@click.option("--output-len", type=int, help="Tokens to generate (default 128).")
@click.option(
    "--dataset",
    type=click.Path(path_type=Path, dir_okay=False),
    help='JSONL: {"prompt": ..., "output_len": N} or {"messages": [...], ...} per line.',
)
@click.option(
    "--requests", type=int, help="Requests counted per level (default max(50, 10 x level))."
)
@click.option(
    "--duration", type=float, help="Seconds of measurement per level (instead of --requests)."
)
@click.option(
    "--warmup", type=int, help="Requests to finish before measuring (default: the level)."
)
@click.option(
    "--drain-timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to wait for in-flight requests after the window.",
)
@click.option(
    "--timeout", type=float, default=600.0, show_default=True, help="Seconds one request may take."
)
@click.option(
    "--slo",
    metavar="ttft=MS,tpot=MS,e2el=MS",
    help="Per-request limits for goodput and the recommendation.",
)
@click.option(
    "--ignore-eos/--no-ignore-eos",
    default=True,
    show_default=True,
    help="Ask for exactly the output length (vLLM/SGLang extension).",
)
@click.option("--api-key-env", metavar="VAR", help="Environment variable holding the API key.")
@click.option(
    "--min-gain",
    type=float,
    default=10.0,
    show_default=True,
    help="Knee: throughput gain per doubling below this %.",
)
@click.option(
    "--max-latency-growth",
    type=float,
    default=50.0,
    show_default=True,
    help="Knee: p90 TTFT/TPOT growth per doubling above this %.",
)
@click.option(
    "--max-loop-lag-ms",
    type=float,
    default=5.0,
    show_default=True,
    help="Self-check: event-loop lag p99 above this marks a level client-bound.",
)
@click.option(
    "--max-client-cpu",
    type=float,
    default=90.0,
    show_default=True,
    help="Self-check: client CPU (% of one core) at or above this marks a level client-bound.",
)
@click.option(
    "--event-loop",
    type=click.Choice(["asyncio", "uvloop"]),
    default="asyncio",
    show_default=True,
    help="uvloop (if installed) spends about a fifth less client CPU per request.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write result.json, levels.csv, requests.csv, plots and report.html here.",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where deployments are recorded (as for `deploy up`).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed for prompts and arrivals."
)
@click.option(
    "--no-proxy",
    is_flag=True,
    help="Ignore HTTP(S)_PROXY for a remote server (loopback is always reached directly).",
)
@json_option
def bench(**params: object) -> None:
    """Measure throughput and latency against concurrency and recommend a level.

    DEPLOYMENT names a running deployment; or pass --url for any OpenAI-compatible server.
    """
    from orchestrator.bench.bounds import BenchFailed
    from orchestrator.bench.command import BenchArgs, run_command

    try:
        click.echo(run_command(BenchArgs(**params)))  # type: ignore[arg-type]
    except BenchFailed as failed:
        click.echo(failed.output)  # what was measured, then the error line
        raise
