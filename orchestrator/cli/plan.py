"""`deploy plan`: size memory and choose parallelism, then explain the choice.

Exit codes: 0 for a plan that fits; 2 when it does not fit (the plan and the smallest hardware
that fits are still printed) or when the input is wrong (one line on stderr). `--json` prints
the `Plan` (docs/plan-json.md) in both the fitting and the non-fitting case.
"""

from __future__ import annotations

from typing import Any

import click

from orchestrator.cli.options import json_option, plan_options
from orchestrator.plan import MemoryEstimate, Plan, Role

EXIT_DOES_NOT_FIT = 2


@click.command("plan")
@plan_options
@json_option
def plan(as_json: bool, **options: Any) -> None:
    """Size memory and choose parallelism for MODEL on the given hardware."""
    from orchestrator import execution
    from orchestrator.planning.request import PlanRequest

    result = execution.plan(PlanRequest.from_options(**options))
    click.echo(result.model_dump_json(indent=2) if as_json else format_plan(result))
    if not result.fits:
        raise SystemExit(EXIT_DOES_NOT_FIT)


def _gib(value: float) -> str:
    return f"{value:.2f} GiB"


def _kib(value: int) -> str:
    return f"{value / 1024:.1f} KiB"


def _params(count: int) -> str:
    return f"{count / 1e9:.1f}B"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _memory_rows(roles: list[Role], unit: str = "GPU") -> list[list[str]]:
    sized = [(role, role.memory) for role in roles if role.memory is not None]
    rows: list[list[str]] = [[f"per {unit}", *(role.name for role, _ in sized)]]

    def row(label: str, cell: Any) -> None:
        rows.append([label, *(cell(role, memory) for role, memory in sized)])

    def fits(role: Role, memory: MemoryEstimate) -> str:
        if memory.fits:
            return f"yes, {memory.margin_gib_per_gpu:.2f} GiB spare"
        return f"NO, short {-memory.margin_gib_per_gpu:.2f} GiB"

    row("weights", lambda r, m: _gib(m.weights_gib_per_gpu))
    row("overhead", lambda r, m: _gib(m.overhead_gib_per_gpu))
    row("KV cache", lambda r, m: _gib(m.kv_cache_gib_per_gpu))
    row("KV per token", lambda r, m: _kib(m.kv_bytes_per_token_per_gpu))
    row("KV per request", lambda r, m: f"{_gib(m.kv_gib_per_request)} ({m.context} tokens)")
    row("KV capacity (instance)", lambda r, m: f"{m.kv_cache_tokens:,} tokens")
    row(
        "max concurrency",
        lambda r, m: f"{m.max_concurrency:g} x {len(r.replicas)} instance(s)",
    )
    row("memory fraction", lambda r, m: f"{m.memory_fraction:g} of {m.gpu_memory_gib:g} GiB")
    row("fits", fits)
    return rows


def _prediction_lines(result: Plan) -> list[str]:
    lines: list[str] = []
    found = result.prediction
    if found is not None:
        lines += ["", "prediction (median, docs/performance.md):"]
        lines += _table(
            [
                ["TTFT", f"{found.ttft_ms:,.0f} ms"],
                ["TPOT", f"{found.tpot_ms:.1f} ms"],
                [
                    "output",
                    f"{found.output_tokens_per_s:,.0f} tok/s "
                    f"({found.output_tokens_per_s_per_gpu:,.0f} per GPU)",
                ],
                ["input", f"{found.input_tokens_per_s:,.0f} tok/s"],
                [
                    "requests",
                    f"{found.requests_per_s:.2f} /s, up to {found.max_concurrency} running",
                ],
                ["bound", found.bound],
            ]
        )
    if result.adjustments:
        lines += ["", "adjustments:"]
        lines += [
            f"  {item.knob} {item.value} (default {item.default}): {item.reason}"
            for item in result.adjustments
        ]
    return lines


def format_plan(result: Plan) -> str:
    """The human report: model, engine, hardware, plan, memory, reasons, alternatives."""
    model, engine, hw, req = result.model, result.engine, result.hardware, result.request
    kind = "MoE" if model.is_moe else "dense"
    lines = [
        f"{'model':<10}{model.name} ({model.id}): {_params(model.params_total)} params"
        + (f", {_params(model.params_active)} active" if model.is_moe else "")
        + f", {kind}, {model.attention.upper()}, {model.checkpoint_format}",
        f"{'engine':<10}{engine.name} {engine.version} ({engine.image})",
        f"{'hardware':<10}{hw.nodes} node(s) x {hw.gpus_per_node} x {hw.gpu} "
        f"({hw.gpu_memory_gib:g} GiB), {hw.interconnect}, fabric {hw.fabric}"
        if result.cpu is None
        else f"{'hardware':<10}{hw.nodes} CPU node(s), {hw.gpu_memory_gib:g} GiB host memory "
        f"each, fabric {hw.fabric}",
        f"{'request':<10}goal {req.goal}, context {req.context}, "
        f"concurrency {req.concurrency or 1}, KV dtype {req.kv_cache_dtype}"
        + (f", quantization {req.quantization}" if req.quantization else "")
        + (", pins " + " ".join(f"{k}={v}" for k, v in req.pins.items()) if req.pins else ""),
        "",
        f"plan: {result.name} - {'FITS' if result.fits else 'DOES NOT FIT'}",
    ]
    unit = "GPU" if result.cpu is None else "rank"
    rows = [["role", "parallelism", "instances", f"{unit}s", "placement"]]
    for role in result.roles:
        if role.name == "router":
            where = ", ".join(s.node for r in role.replicas for s in r.slices)
            rows.append([role.name, "-", "1", "0", where])
            continue
        from orchestrator.planning.resolver.explain import placement_text

        gpus = role.parallelism.gpus * len(role.replicas)
        rows.append(
            [
                role.name,
                role.parallelism.label(),
                str(len(role.replicas)),
                str(gpus),
                placement_text(role.replicas),
            ]
        )
    lines += _table(rows)
    lines += ["", "memory:"]
    lines += _table(_memory_rows(result.roles, unit))
    lines += _prediction_lines(result)
    lines += ["", "why:"]
    width = max(len(reason.decision) for reason in result.rationale) + 2
    for reason in result.rationale:
        lines.append(f"  {reason.decision:<{width}}{reason.choice}")
        lines.append(f"  {'':<{width}}{reason.why}")
    if result.alternatives:
        lines += ["", "alternatives:"]
        width = max(len(alt.summary) for alt in result.alternatives) + 2
        lines += [f"  {alt.summary:<{width}}{alt.lost_because}" for alt in result.alternatives]
    if result.warnings:
        lines += ["", "warnings:"]
        lines += [f"  - {warning}" for warning in result.warnings]
    if not result.fits:
        lines += [
            "",
            f"suggestion: {result.suggestion or 'no catalog hardware up to 16 nodes fits'}",
        ]
    return "\n".join(lines)
