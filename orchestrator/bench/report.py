"""The result as JSON (the full record), a text table, and CSV files."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from orchestrator.bench.metrics import Distribution
from orchestrator.bench.runner import BenchResult, LevelResult

SCHEMA_VERSION = 1


def _finite(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return "inf"


def _dist(dist: Distribution | None) -> dict[str, float] | None:
    return None if dist is None else asdict(dist)


def level_dict(level: LevelResult) -> dict[str, Any]:
    m, c, spec = level.metrics, level.check, level.spec
    return {
        "load": _finite(level.load),
        "concurrency": spec.concurrency,
        "rate": _finite(spec.rate),
        "window": {
            "warmup_requests": spec.warmup,
            "requests_target": spec.requests,
            "duration_target_s": spec.duration,
            "window_s": m.window_s,
            "span_s": m.span_s,
            "throughput_basis": m.throughput_basis,
            "cancelled_at_drain": level.cancelled,
        },
        "requests": m.requests,
        "completed": m.completed,
        "errors": m.errors,
        "request_throughput": m.request_throughput,
        "output_throughput": m.output_throughput,
        "total_token_throughput": m.total_token_throughput,
        "goodput": m.goodput,
        "slo_attainment": m.slo_attainment,
        "achieved_concurrency": m.achieved_concurrency,
        "mean_input_tokens": m.mean_input_tokens,
        "mean_output_tokens": m.mean_output_tokens,
        "token_source": {"usage": m.tokens_from_usage, "chunks": m.tokens_from_chunks},
        "ttft_ms": _dist(m.ttft),
        "tpot_ms": _dist(m.tpot),
        "itl_ms": _dist(m.itl),
        "e2el_ms": _dist(m.e2el),
        "client": {
            "cpu_fraction": c.cpu_fraction,
            "user_s": c.user_s,
            "system_s": c.system_s,
            "loop_lag_mean_ms": c.loop_lag_mean_ms,
            "loop_lag_p99_ms": c.loop_lag_p99_ms,
            "loop_lag_max_ms": c.loop_lag_max_ms,
            "target": c.target,
            "achieved": c.achieved,
            "capped_by_concurrency": c.capped,
            "client_bound": c.client_bound,
            "reasons": list(c.reasons),
            "contention": list(c.contention),
        },
        "failure": level.failure.line() if level.failure is not None else None,
        "error_examples": _error_examples(level),
    }


def _error_examples(level: LevelResult) -> dict[str, str]:
    examples: dict[str, str] = {}
    for record in level.records:
        if record.in_window and record.error_kind and record.error_kind not in examples:
            examples[record.error_kind] = record.error or ""
    return examples


def to_dict(result: BenchResult) -> dict[str, Any]:
    o = result.options
    rec = result.recommendation
    return {
        "schema_version": SCHEMA_VERSION,
        "started_at": result.started_at,
        "url": result.url,
        "model": result.model,
        "endpoint": o.endpoint,
        "sweep": o.sweep,
        "workload": {
            "dataset": str(o.dataset) if o.dataset else None,
            "input_len": None if o.dataset else o.input_len,
            "output_len": o.output_len,
            "ignore_eos": o.ignore_eos,
        },
        "slo": asdict(o.slo),
        "rule": asdict(o.rule),
        "client_limits": asdict(o.limits),
        "client": result.client,
        "levels": [level_dict(level) for level in result.levels],
        # The plan's prediction per level (a deployment deploy planned), else absent.
        **({"predicted": result.predicted} if result.predicted else {}),
        **({"planned": result.planned} if result.planned else {}),
        "recommendation": None
        if rec is None
        else {
            "recommended": _finite(rec.recommended),
            "reason": rec.reason,
            "knee": _finite(rec.knee),
            "knee_reason": rec.knee_reason,
            "meets_slo": [_finite(x) for x in rec.meets_slo],
            "client_bound_ignored": [_finite(x) for x in rec.skipped_client_bound],
        },
    }


def to_json(result: BenchResult) -> str:
    return json.dumps(to_dict(result), indent=2)


def _ms(dist: Distribution | None, field: str) -> str:
    return "-" if dist is None else f"{getattr(dist, field):.1f}"


def table(result: BenchResult) -> str:
    """A fixed-width table, one row per level, then the recommendation."""
    load_name = "rate" if result.options.rates else "conc"
    header = [load_name, "req/s", "out tok/s", "TTFT p50", "TTFT p90", "TPOT p50", "TPOT p90",
              "ITL p90", "E2E p90", "in-flight", "errors", "note"]  # fmt: skip
    has_slo = not result.options.slo.empty
    if has_slo:
        header.insert(3, "SLO met")
    rows = [header]
    for level in result.levels:
        m = level.metrics
        errors = sum(m.errors.values())
        note = "client-bound: " + "; ".join(level.check.reasons) if level.check.client_bound else ""
        if level.failure is not None:
            note = f"FAILED: {level.failure.failed}/{level.failure.counted} requests failed"
        row = [
            f"{level.load:g}",
            f"{m.request_throughput:.2f}",
            f"{m.output_throughput:.1f}",
            _ms(m.ttft, "p50"),
            _ms(m.ttft, "p90"),
            _ms(m.tpot, "p50"),
            _ms(m.tpot, "p90"),
            _ms(m.itl, "p90"),
            _ms(m.e2el, "p90"),
            f"{m.achieved_concurrency:.1f}",
            f"{errors}/{m.requests}",
            note,
        ]
        if has_slo:
            row.insert(3, f"{(m.slo_attainment or 0):.0%}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for i, row in enumerate(rows):
        cells = [c.ljust(w) if j in (0, len(row) - 1) else c.rjust(w)
                 for j, (c, w) in enumerate(zip(row, widths, strict=True))]  # fmt: skip
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"model {result.model} at {result.url} (latencies in ms)")
    rec = result.recommendation
    if rec is not None:
        if rec.recommended is None:
            lines.append(f"recommended: none ({rec.reason})")
        elif result.options.rates:
            lines.append(f"recommended: rate {rec.recommended:g} requests/s ({rec.reason})")
        else:
            lines.append(f"recommended: concurrency {rec.recommended:g} ({rec.reason})")
        lines.append(f"knee: {rec.knee_reason}")
    lines += _predicted_lines(result)
    for level in result.levels:
        m = level.metrics
        if m.errors and sum(m.errors.values()):
            kinds = ", ".join(f"{k} {v}" for k, v in m.errors.items() if v)
            lines.append(f"errors at {level.load:g}: {kinds}")
    return "\n".join(lines)


def _predicted_lines(result: BenchResult) -> list[str]:
    """Predicted vs measured per level, when the plan is known."""
    if not any(result.predicted):
        return []
    lines = ["", "predicted (plan) vs measured, medians:"]
    for level, predicted in zip(result.levels, result.predicted, strict=False):
        if predicted is None:
            continue
        m = level.metrics
        lines.append(
            f"  {level.load:g}: TTFT {predicted['ttft_ms']:.1f} vs {_ms(m.ttft, 'p50')}, "
            f"TPOT {predicted['tpot_ms']:.1f} vs {_ms(m.tpot, 'p50')}, "
            f"out tok/s {predicted['output_tokens_per_s']:.1f} vs {m.output_throughput:.1f} "
            f"(bound {predicted['bound']})"
        )
    return lines


LEVEL_COLUMNS = [
    "load", "concurrency", "rate", "requests", "completed", "errors_connection",
    "errors_http_status", "errors_stream_break", "errors_timeout", "request_throughput",
    "output_throughput", "total_token_throughput", "goodput", "slo_attainment",
    "achieved_concurrency", "mean_input_tokens", "mean_output_tokens",
    "ttft_mean_ms", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms",
    "tpot_mean_ms", "tpot_p50_ms", "tpot_p90_ms", "tpot_p99_ms",
    "itl_mean_ms", "itl_p50_ms", "itl_p90_ms", "itl_p99_ms",
    "e2el_mean_ms", "e2el_p50_ms", "e2el_p90_ms", "e2el_p99_ms",
    "client_cpu_fraction", "loop_lag_p99_ms", "client_bound", "client_bound_reasons",
]  # fmt: skip

REQUEST_COLUMNS = [
    "level", "load", "index", "in_window", "warmup", "start_s", "ttft_ms", "tpot_ms",
    "e2el_ms", "output_tokens", "token_source", "prompt_tokens", "chunks", "status",
    "error_kind", "error",
]  # fmt: skip


def write_csvs(result: BenchResult, out_dir: Path) -> list[Path]:
    levels_path = out_dir / "levels.csv"
    requests_path = out_dir / "requests.csv"
    with levels_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LEVEL_COLUMNS)
        for level in result.levels:
            writer.writerow(_level_row(level))
    origin = min((r.start for lv in result.levels for r in lv.records), default=0.0)
    with requests_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REQUEST_COLUMNS)
        for level in result.levels:
            for r in level.records:
                ttft, tpot = r.ttft, r.tpot
                writer.writerow([
                    level.spec.index, f"{level.load:g}", r.index, int(r.in_window),
                    int(r.warmup), f"{r.start - origin:.6f}",
                    "" if ttft is None else f"{ttft * 1000:.3f}",
                    "" if tpot is None else f"{tpot * 1000:.3f}",
                    f"{r.e2el * 1000:.3f}", r.output_tokens, r.token_source,
                    "" if r.prompt_tokens is None else r.prompt_tokens, len(r.chunk_times),
                    "" if r.status is None else r.status, r.error_kind or "", r.error or "",
                ])  # fmt: skip
    return [levels_path, requests_path]


def _level_row(level: LevelResult) -> list[Any]:
    m, c = level.metrics, level.check
    row: list[Any] = [
        f"{level.load:g}", level.spec.concurrency or "", _finite(level.spec.rate) or "",
        m.requests, m.completed, m.errors["connection"], m.errors["http_status"],
        m.errors["stream_break"], m.errors["timeout"], f"{m.request_throughput:.4f}",
        f"{m.output_throughput:.3f}", f"{m.total_token_throughput:.3f}",
        "" if m.goodput is None else f"{m.goodput:.4f}",
        "" if m.slo_attainment is None else f"{m.slo_attainment:.4f}",
        f"{m.achieved_concurrency:.3f}", f"{m.mean_input_tokens:.1f}",
        f"{m.mean_output_tokens:.1f}",
    ]  # fmt: skip
    for dist in (m.ttft, m.tpot, m.itl, m.e2el):
        if dist is None:
            row += ["", "", "", ""]
        else:
            row += [f"{dist.mean:.3f}", f"{dist.p50:.3f}", f"{dist.p90:.3f}", f"{dist.p99:.3f}"]
    row += [f"{c.cpu_fraction:.3f}", f"{c.loop_lag_p99_ms:.3f}", int(c.client_bound),
            "; ".join(c.reasons)]  # fmt: skip
    return row
