"""`deploy profiles list` and `deploy profiles show`: the model and GPU catalog."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from orchestrator.cli.options import json_option

if TYPE_CHECKING:
    from orchestrator.schema import ModelProfile


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain left-aligned columns separated by two spaces."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    )


def _billions(params: int) -> str:
    return f"{params / 1e9:.1f}B"


@click.group("profiles")
def profiles() -> None:
    """List and show model and GPU profiles."""


@profiles.command("list")
@click.option("--gpus", "show_gpus", is_flag=True, help="List GPUs instead of models.")
@json_option
def list_profiles(show_gpus: bool, as_json: bool) -> None:
    """List the catalog's models (or GPUs with --gpus)."""
    from orchestrator.hardware.gpus import load_gpus
    from orchestrator.models.catalog import load_models

    if show_gpus:
        gpus = sorted(load_gpus().values(), key=lambda spec: spec.name)
        if as_json:
            click.echo(json.dumps([spec.model_dump(mode="json") for spec in gpus], indent=2))
            return
        rows = [
            (
                spec.name,
                f"{spec.memory_gib:.2f}",
                f"{spec.memory_bandwidth_gbs:.0f}",
                f"{spec.bf16_tflops:.0f}",
                f"{spec.fp8_tflops:.0f}" if spec.fp8_tflops else "-",
                f"NVLink{spec.nvlink.generation} {spec.nvlink.bandwidth_gbs:.0f} GB/s"
                + (f" x{spec.nvlink.domain_gpus}" if spec.nvlink.domain_gpus else "")
                if spec.nvlink
                else f"PCIe{spec.pcie_generation}",
                ", ".join(spec.aliases[:3]),
            )
            for spec in gpus
        ]
        headers = ("GPU", "GiB", "GB/s", "BF16 TF", "FP8 TF", "LINK", "ALIASES")
        click.echo(_table(headers, rows))
        return
    models = sorted(load_models().values(), key=lambda profile: profile.name)
    if as_json:
        click.echo(json.dumps([profile.model_dump(mode="json") for profile in models], indent=2))
        return
    rows = [
        (
            profile.name,
            profile.hf_id,
            _billions(profile.params_total),
            _billions(profile.params_active) if profile.is_moe else "dense",
            profile.attention.upper(),
            profile.checkpoint.format,
            str(profile.max_context),
        )
        for profile in models
    ]
    headers = ("MODEL", "HF ID", "PARAMS", "ACTIVE", "ATTN", "WEIGHTS", "MAX CTX")
    click.echo(_table(headers, rows))


@profiles.command("show")
@click.argument("model")
@click.option("--revision", metavar="REV", help="Hub branch, tag or commit of MODEL.")
@json_option
def show_profile(model: str, revision: str | None, as_json: bool) -> None:
    """Show one model's profile (catalog, local directory or Hub repo) and its KV cost."""
    from orchestrator.models.lookup import find_model
    from orchestrator.plan import Parallelism
    from orchestrator.planning.memory.estimate import (
        kv_bytes_per_token_per_gpu,
        linear_state_bytes_per_request_per_gpu,
        local_kv_bytes_per_token_layers,
    )
    from orchestrator.planning.memory.weights import weight_bytes_per_gpu

    profile = find_model(model, revision)
    single = Parallelism()
    if as_json:
        click.echo(json.dumps(profile.model_dump(mode="json"), indent=2))
        return
    kv = kv_bytes_per_token_per_gpu(profile, single)
    local = local_kv_bytes_per_token_layers(profile, single)
    fields: list[tuple[str, str]] = [
        ("name", profile.name),
        ("hf id", profile.hf_id),
        ("aliases", ", ".join(profile.aliases) or "-"),
        ("architecture", profile.architecture),
        ("attention", profile.attention.upper()),
        ("layers", str(profile.num_layers)),
        (
            "heads",
            f"{profile.num_attention_heads} query, {profile.num_kv_heads} KV, "
            f"head_dim {profile.head_dim}",
        ),
        ("hidden size", str(profile.hidden_size)),
        ("vocab", str(profile.vocab_size)),
        ("max context", str(profile.max_context)),
        ("parameters", f"{_billions(profile.params_total)} total"),
    ]
    if profile.attention == "mla":
        fields.append(
            ("MLA latent", f"kv_lora_rank {profile.kv_lora_rank} + rope {profile.qk_rope_head_dim}")
        )
    if profile.moe is not None:
        moe = profile.moe
        fields.append(
            (
                "MoE",
                f"{moe.num_experts} experts, top-{moe.experts_per_token}, "
                f"{moe.shared_experts} shared, {_billions(profile.params_active)} active",
            )
        )
    if profile.mtp_params:
        fields.append(("MTP module", f"{_billions(profile.mtp_params)} (loaded only with MTP)"))
    if profile.local_attention is not None:
        la = profile.local_attention
        fields.append(
            (
                "local attention",
                f"{la.kind}, window {la.window}, {la.layers} of {profile.num_layers} layers",
            )
        )
    if profile.linear_attention is not None:
        lin = profile.linear_attention
        state = linear_state_bytes_per_request_per_gpu(profile, single)
        fields.append(
            (
                "linear attention",
                f"{lin.layers} of {profile.num_layers} layers, {state / 2**20:.1f} MiB "
                "state per request",
            )
        )
    if profile.indexer is not None:
        fields.append(
            ("sparse indexer", f"head_dim {profile.indexer.head_dim}, top-{profile.indexer.top_k}")
        )
    fields.append(("checkpoint", _checkpoint_text(profile)))
    if profile.origin != "catalog" or profile.revision:
        at = f" at {profile.revision}" if profile.revision else ""
        fields.append(("source", f"{profile.origin}{at}"))
    weights = weight_bytes_per_gpu(profile, single) / 2**30
    fields.append(("weights", f"{weights:.1f} GiB (one GPU, checkpoint format)"))
    kv_text = f"{kv:,} B/token (BF16, layers that grow with context)"
    if local:
        kv_text += f"; local layers add {local:,} B/token up to their window"
    fields.append(("KV cache", kv_text))
    fields.append(("max TP", str(profile.max_tp) if profile.max_tp else "-"))
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        click.echo(f"{label.ljust(width)}  {value}")
    for note in profile.notes:
        click.echo(f"note: {note}")
    for warning in profile.warnings:
        click.echo(f"warning: {warning}")


def _checkpoint_text(profile: ModelProfile) -> str:
    checkpoint = profile.checkpoint
    text: str = checkpoint.format
    scheme = checkpoint.scheme
    if scheme is not None:
        text += f" ({scheme.method}, {scheme.weight_bits}-bit"
        text += f", group {scheme.group_size}" if scheme.group_size else ""
        text += ")"
    if checkpoint.bytes is not None:
        text += f", {checkpoint.bytes / 2**30:.1f} GiB of weights"
    return text
