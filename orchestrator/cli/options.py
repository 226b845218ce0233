"""Options shared by the commands that plan (`plan`, `render`, `up`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def checked_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """`--name` of every command: the one deployment name rule (`orchestrator.naming`)."""
    if value is None:
        return None
    from orchestrator.naming import check_name

    return check_name(value)


def hardware_options(func: F) -> F:
    """--gpus / --cpus / --nodes / --cluster, accepted wherever hardware is needed."""
    for option in reversed(
        [
            click.option(
                "--gpus",
                metavar="SPEC",
                help="GPUs per node, e.g. 8xH100-80GB, h100-sxm, 4xRTX4090 (default: detect).",
            ),
            click.option(
                "--cpus",
                metavar="SPEC",
                help="Serve on CPU cores with vLLM's CPU build: all (this machine), CORES, or "
                "CORES:MEMORY (e.g. 16:64g).",
            ),
            click.option(
                "--nodes", type=int, help="Number of nodes (default 1, or the cluster's)."
            ),
            click.option(
                "--cluster",
                type=click.Path(path_type=Path, dir_okay=False),
                help="Cluster inventory YAML (see profiles/clusters/).",
            ),
        ]
    ):
        func = option(func)
    return func


def plan_options(func: F) -> F:
    """Everything that shapes a plan."""
    options = [
        click.argument("model"),
        click.option(
            "--revision",
            metavar="REV",
            help="Hub branch, tag or commit of MODEL (default: the default branch).",
        ),
        click.option(
            "--engine", type=click.Choice(["vllm", "sglang"]), default="vllm", show_default=True
        ),
        click.option("--engine-version", metavar="X.Y.Z", help="Default: the newest pinned."),
        click.option(
            "--goal",
            type=click.Choice(["latency", "throughput", "balanced"]),
            default="balanced",
            show_default=True,
        ),
        click.option(
            "--context", type=int, help="Tokens per request (default: min(model max, 32768))."
        ),
        click.option(
            "--concurrency",
            type=int,
            help="Requests in flight: held at full context, and the load predicted "
            "(default: 1 for latency, 16 for balanced, saturation for throughput).",
        ),
        click.option(
            "--request-rate",
            type=float,
            metavar="R",
            help="Predict an open-loop load of R requests/s instead of --concurrency.",
        ),
        click.option("--isl", type=int, help="Input tokens per request predicted (default 1024)."),
        click.option("--osl", type=int, help="Output tokens per request predicted (default 1024)."),
        click.option(
            "--slo",
            metavar="TARGETS",
            help="Latency targets, e.g. ttft=2s,tpot=50ms (balanced default: those).",
        ),
        click.option(
            "--quantization",
            metavar="Q",
            help="Weight format: bf16, fp8, mxfp4, int8, awq, gptq (default: checkpoint).",
        ),
        click.option(
            "--kv-cache-dtype",
            type=click.Choice(["auto", "fp8"]),
            default="auto",
            show_default=True,
        ),
        click.option(
            "--cache-bytes-per-token",
            type=int,
            metavar="N",
            help="KV cache bytes one token costs over all layers, for an architecture whose "
            "cache deploy cannot size from its config.",
        ),
        click.option(
            "--gpu-memory-utilization",
            "--mem-fraction-static",
            "gpu_memory_utilization",
            type=float,
            help="Memory fraction: vLLM's --gpu-memory-utilization, SGLang's "
            "--mem-fraction-static (either spelling).",
        ),
        click.option("--tp", type=int, help="Pin tensor parallel size."),
        click.option("--pp", type=int, help="Pin pipeline parallel size."),
        click.option("--dp", type=int, help="Pin data parallel size."),
        click.option("--ep", type=int, help="Pin expert parallel size."),
        click.option("--attn-dp", type=int, help="Pin attention data parallel size."),
        click.option("--max-gpus", type=int, help="Use at most this many GPUs."),
        click.option("--disagg", is_flag=True, help="Prefill/decode disaggregation."),
        click.option("--prefill-gpus", type=int, help="GPUs for the prefill pool (with --disagg)."),
        click.option("--decode-gpus", type=int, help="GPUs for the decode pool (with --disagg)."),
        click.option(
            "--kv-connector",
            type=click.Choice(["nixl", "mooncake"]),
            help="KV transfer with --disagg (default: NIXL for vLLM; SGLang: Mooncake on RDMA "
            "nodes, NIXL otherwise).",
        ),
        click.option(
            "--distributed-backend",
            type=click.Choice(["mp", "ray"]),
            default="mp",
            show_default=True,
            help="vLLM across nodes: native multiprocessing, or a Ray cluster.",
        ),
        click.option(
            "--download-rate",
            type=click.FloatRange(min=0),
            metavar="GIB_PER_S",
            help="GiB/s a node downloads the checkpoint at on a first start (health-check start "
            "periods cover it; default 0.25); 0 when every node's cache already holds it.",
        ),
        click.option(
            "--port",
            type=click.IntRange(1, 65535),
            metavar="PORT",
            help="The endpoint's port (default: the engine release's own, vLLM 8000, SGLang "
            "30000); engines behind a router or load balancer take the ports after it.",
        ),
        click.option(
            "--name",
            callback=checked_name,
            help="Deployment name (default: derived from the model).",
        ),
        click.option(
            "--engine-arg",
            "engine_args",
            multiple=True,
            metavar="ARG",
            help="Extra engine flag, checked against the engine version (repeatable).",
        ),
        click.option("--public", is_flag=True, help="Publish ports on all interfaces."),
        click.option(
            "--api-key-env",
            metavar="VAR",
            help="Protect the endpoint with the API key in this environment variable.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return hardware_options(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


def allow_missing_secret_option(func: F) -> F:
    """--allow-missing-secret VAR: render or start although VAR is unset (deliberately)."""
    return click.option(
        "--allow-missing-secret",
        "allow_missing_secrets",
        multiple=True,
        metavar="VAR",
        help="Go on although VAR (e.g. the --api-key-env variable) is unset (repeatable).",
    )(func)
