"""The `deploy` command line: a thin click layer over the library.

Commands are registered by name and imported only when used, so `deploy --help` and a dry
run never pay for docker, pynvml, aiohttp or rich. Each command module under `orchestrator/cli/`
parses options, makes one core call and prints; no module here holds planning logic.
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import Any

import click

from orchestrator import __version__
from orchestrator.cli.startup import skip_pydantic_plugins
from orchestrator.errors import DeployError

# name -> (module, attribute, one-line help shown by `deploy --help` without importing it)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "plan": ("orchestrator.cli.plan", "plan", "Size memory and choose parallelism for a model."),
    "profiles": ("orchestrator.cli.profiles", "profiles", "List and show model and GPU profiles."),
    "detect": ("orchestrator.cli.detect", "detect", "Detect local GPUs and their topology."),
    "render": ("orchestrator.cli.render", "render", "Write compose files and launch scripts."),
    "up": ("orchestrator.cli.runtime", "up", "Plan, render, start and supervise a deployment."),
    "status": ("orchestrator.cli.runtime", "status", "Show the services of deployments."),
    "logs": ("orchestrator.cli.runtime", "logs", "Show the logs of a deployment's services."),
    "down": ("orchestrator.cli.runtime", "down", "Stop and remove a deployment."),
    "bench": ("orchestrator.cli.bench", "bench", "Benchmark an OpenAI-compatible endpoint."),
    "sim": ("orchestrator.cli.sim", "sim", "Run the engine simulator (rehearsals, tests)."),
    "doctor": ("orchestrator.cli.doctor", "doctor", "Pre-flight every node of a plan."),
    "calibrate": (
        "orchestrator.cli.calibrate",
        "calibrate",
        "Learn the performance model's factors from your bench runs.",
    ),
    "engine-image": (
        "orchestrator.cli.engine_image",
        "engine_image",
        "Build the vLLM CPU engine image locally; make tiny test models.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (module, _, _) in COMMANDS.items() if _module_exists(module)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None or not _module_exists(entry[0]):
            return None
        module = importlib.import_module(entry[0])
        command = getattr(module, entry[1])
        assert isinstance(command, click.Command)
        from orchestrator.cli.bounds import harden

        harden(command)
        _resume_gc()
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            # One line, like every other input error: what is wrong and where the help is.
            where = error.ctx.command_path if error.ctx is not None else "deploy"
            click.echo(f"error: {error.format_message()} (see `{where} --help`)", err=True)
            ctx.exit(error.exit_code)
        except DeployError as error:
            if ctx.find_root().params.get("debug"):
                import traceback

                traceback.print_exc()
            click.echo(f"error: {error}", err=True)
            ctx.exit(error.exit_code)


def _module_exists(module: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deploy")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def cli(debug: bool) -> None:
    """Plan, render, start and supervise vLLM and SGLang deployments."""


_gc_paused = False


def _resume_gc() -> None:
    """Freeze what start-up built (modules, classes: they live until exit) and resume the GC."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


def main() -> None:
    # Start-up creates tens of thousands of objects that live until exit (modules, classes,
    # click and pydantic structures); the cyclic GC would scan them again and again while the
    # command's modules import. It is paused until the command is imported, then those objects
    # are frozen out of its way (`_resume_gc`): the command itself runs with the GC on, so
    # long-running ones still collect their own garbage.
    global _gc_paused
    skip_pydantic_plugins()
    if gc.isenabled():
        gc.disable()
        _gc_paused = True
    try:
        cli.main(prog_name="deploy")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
