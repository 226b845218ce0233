"""`deploy sim`: run the engine simulator in the foreground, or build its Docker image."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import click

from orchestrator.errors import DeployError, InputError, RuntimeFailure

_BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "build-sim-image.sh"
_DEFAULT_PORTS = {"vllm": 8000, "sglang": 30000}


@click.group()
def sim() -> None:
    """Run the engine simulator (rehearsals, tests) or build its image."""


@sim.command()
@click.option("--engine", type=click.Choice(["vllm", "sglang"]), default="vllm", show_default=True)
@click.option("--model", default="sim-model", show_default=True, help="Served model name.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Port (default: the engine's, 8000 or 30000).",
)
@click.option("--load-seconds", type=float, help="Weight loading time (connections refused).")
@click.option("--warmup-seconds", type=float, help="SGLang warmup time (/health answers 503).")
@click.option("--ttft-ms", type=float, help="Time to first token.")
@click.option("--tpot-ms", type=float, help="Time per output token after the first.")
@click.option("--max-concurrency", type=int, help="Requests served at once; others queue.")
@click.option(
    "--fault",
    metavar="FAULT",
    help="crash-after=SECONDS, hang, hang-after=SECONDS, never-ready or exit-on-start.",
)
@click.option("--api-key", help="Require this bearer key on the API (like --api-key).")
def serve(
    engine: str,
    model: str,
    host: str,
    port: int | None,
    load_seconds: float | None,
    warmup_seconds: float | None,
    ttft_ms: float | None,
    tpot_ms: float | None,
    max_concurrency: int | None,
    fault: str | None,
    api_key: str | None,
) -> None:
    """Serve a simulated vLLM or SGLang until Ctrl+C.

    Options override the DEPLOY_SIM_* environment variables.
    """
    from orchestrator.sim.argv import parse_command
    from orchestrator.sim.server import run_foreground
    from orchestrator.sim.settings import SimConfigError

    env = dict(os.environ)
    overrides = {
        "DEPLOY_SIM_LOAD_SECONDS": load_seconds,
        "DEPLOY_SIM_WARMUP_SECONDS": warmup_seconds,
        "DEPLOY_SIM_TTFT_MS": ttft_ms,
        "DEPLOY_SIM_TPOT_MS": tpot_ms,
        "DEPLOY_SIM_MAX_CONCURRENCY": max_concurrency,
        "DEPLOY_SIM_FAULT": fault,
    }
    env.update({name: str(value) for name, value in overrides.items() if value is not None})
    port = _DEFAULT_PORTS[engine] if port is None else port
    if engine == "vllm":
        argv = ["vllm", "serve", model]
    else:
        argv = ["sglang", "serve", "--model-path", model, "--enable-metrics"]
    argv += ["--host", host, "--port", str(port)]
    if api_key:
        argv += ["--api-key", api_key]
    try:
        from orchestrator.sim.settings import Behaviour, EngineSettings

        program = parse_command(argv, env)
        assert isinstance(program, EngineSettings)
        behaviour = Behaviour.from_env(env, program.engine)
    except SimConfigError as error:
        raise InputError(str(error), "see `deploy sim serve --help`") from None
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    click.echo(
        f"simulating {engine} model {model!r} at http://{shown}:{port} "
        f"(load {behaviour.load_seconds:g} s, TTFT {behaviour.ttft_ms:g} ms, "
        f"TPOT {behaviour.tpot_ms:g} ms, faults: {behaviour.faults.describe()}); Ctrl+C stops",
        err=True,
    )
    code = run_foreground(program, behaviour)
    if code != 0:
        raise RuntimeFailure(
            f"the simulator exited with code {code}", "see its last log lines above"
        )


@sim.command()
@click.option("--force", is_flag=True, help="Rebuild the top layer even if it is up to date.")
@click.option("--rebuild-base", is_flag=True, help="Also rebuild the Debian base layer.")
def image(force: bool, rebuild_base: bool) -> None:
    """Build the simulator image deploy-sim:latest (offline, from Debian packages)."""
    if not _BUILD_SCRIPT.is_file():
        raise DeployError(
            "the image build script docker/build-sim-image.sh is not in this install",
            "run `deploy sim image` from a source checkout (or `make sim-image`)",
        )
    args = ["bash", str(_BUILD_SCRIPT)]
    if force:
        args.append("--force")
    if rebuild_base:
        args.append("--rebuild-base")
    try:
        result = subprocess.run(args, check=False)
    except OSError as error:
        raise DeployError(f"cannot run bash: {error}", "install bash") from None
    if result.returncode != 0:
        raise RuntimeFailure(
            "building the simulator image failed", "see the build-sim-image lines above"
        )
