"""Throughput and latency against load: PNG (matplotlib, Agg) and a self-contained HTML report.

The HTML draws its charts as inline SVG and carries its own styles: no scripts, fonts or
images from anywhere else, so it can be mailed or archived as one file.
"""

from __future__ import annotations

import html
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from orchestrator.bench.report import table
from orchestrator.bench.runner import BenchResult, LevelResult

Series = tuple[str, list[tuple[float, float]]]

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def _points(levels: Sequence[LevelResult], metric: str, field: str) -> list[tuple[float, float]]:
    points = []
    for level in levels:
        if math.isinf(level.load):
            continue
        dist = getattr(level.metrics, metric)
        value = dist if field == "" else (getattr(dist, field) if dist is not None else None)
        if value is not None:
            points.append((level.load, float(value)))
    return points


def chart_series(result: BenchResult) -> dict[str, list[Series]]:
    levels = result.levels
    return {
        "Output throughput (tokens/s)": [
            ("output tok/s", _points(levels, "output_throughput", ""))
        ],
        "Request throughput (requests/s)": [
            ("requests/s", _points(levels, "request_throughput", ""))
        ],
        "TTFT (ms)": [(f"p{p}", _points(levels, "ttft", f"p{p}")) for p in (50, 90, 99)],
        "TPOT (ms)": [(f"p{p}", _points(levels, "tpot", f"p{p}")) for p in (50, 90, 99)],
        "E2E latency (ms)": [(f"p{p}", _points(levels, "e2el", f"p{p}")) for p in (50, 90, 99)],
    }


def svg_chart(
    title: str,
    x_label: str,
    series: list[Series],
    *,
    marked: Sequence[float] = (),
    recommended: float | None = None,
    width: int = 460,
    height: int = 280,
) -> str:
    """A line chart, log2 x axis; hollow points at `marked` x (client-bound)."""
    left, right, top, bottom = 60, 20, 30, 45
    xs = sorted({x for _, pts in series for x, _ in pts if x > 0})
    ys = [y for _, pts in series for _, y in pts]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">'
        f"{html.escape(title)}</text>",
    ]
    if not xs or not ys:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text>')
        return "".join(out) + "</svg>"
    lx0, lx1 = math.log2(xs[0]), math.log2(xs[-1])
    if lx1 == lx0:
        lx0, lx1 = lx0 - 1, lx1 + 1
    y1 = max(ys) * 1.1 or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (math.log2(x) - lx0) / (lx1 - lx0) * plot_w

    def py(y: float) -> float:
        return top + plot_h - y / y1 * plot_h

    out.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>'
    )
    for i in range(5):
        y = y1 * i / 4
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            f'stroke="#eee"/><text x="{left - 4}" y="{py(y) + 4:.1f}" '
            f'text-anchor="end">{_short(y)}</text>'
        )
    for x in xs:
        out.append(
            f'<text x="{px(x):.1f}" y="{top + plot_h + 15}" text-anchor="middle">{x:g}</text>'
        )
    out.append(
        f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">'
        f"{html.escape(x_label)}</text>"
    )
    if recommended is not None and recommended > 0 and not math.isinf(recommended):
        x = px(recommended)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" '
            'stroke="#2ca02c" stroke-dasharray="4 3"/>'
        )
    for i, (name, pts) in enumerate(series):
        colour = _COLOURS[i % len(_COLOURS)]
        pts = [(x, y) for x, y in pts if x > 0]
        if not pts:
            continue
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in pts:
            fill = "white" if x in marked else colour
            out.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{fill}" '
                f'stroke="{colour}"/>'
            )
        out.append(
            f'<text x="{left + 8}" y="{top + 14 + 13 * i}" fill="{colour}">'
            f"{html.escape(name)}</text>"
        )
    return "".join(out) + "</svg>"


def _short(value: float) -> str:
    if value >= 10000:
        return f"{value / 1000:.0f}k"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def html_report(result: BenchResult) -> str:
    x_label = "requests/s offered" if result.options.rates else "concurrent requests"
    marked = [lv.load for lv in result.levels if lv.check.client_bound]
    rec = result.recommendation
    chosen = rec.recommended if rec else None
    charts = "".join(
        f'<div class="chart">{svg_chart(title, x_label, s, marked=marked, recommended=chosen)}</div>'
        for title, s in chart_series(result).items()
    )
    notes = ""
    if marked:
        notes = (
            "<p class=warn>Hollow points are client-bound levels: the load generator, not "
            "the server, limited them; they are left out of the recommendation.</p>"
        )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>deploy bench: {html.escape(result.model)}</title><style>"
        "body{font-family:sans-serif;margin:2em;color:#222}"
        ".chart{display:inline-block;margin:0 1em 1em 0}"
        "pre{background:#f6f6f6;padding:1em;overflow-x:auto}.warn{color:#a60}"
        "</style></head><body>"
        f"<h1>{html.escape(result.model)}</h1>"
        f"<p>{html.escape(result.url)} &middot; {html.escape(result.started_at)}</p>"
        f"{notes}{charts}<pre>{html.escape(table(result))}</pre></body></html>\n"
    )


def write_plots(result: BenchResult, out: Path) -> list[Path]:
    report = out / "report.html"
    report.write_text(html_report(result))
    return [report, *_write_pngs(result, out)]


def _write_pngs(result: BenchResult, out: Path) -> list[Path]:
    try:
        import matplotlib  # type: ignore[import-not-found]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found]
    except ImportError:
        print("warning: matplotlib is not installed; PNG plots skipped", file=sys.stderr)
        return []
    x_label = "requests/s offered" if result.options.rates else "concurrent requests"
    marked = {lv.load for lv in result.levels if lv.check.client_bound}
    series = chart_series(result)
    written = []
    groups = {
        "throughput.png": ["Output throughput (tokens/s)", "Request throughput (requests/s)"],
        "latency.png": ["TTFT (ms)", "TPOT (ms)", "E2E latency (ms)"],
    }
    for name, titles in groups.items():
        fig, axes = plt.subplots(1, len(titles), figsize=(5 * len(titles), 3.6))
        for ax, title in zip(axes, titles, strict=True):
            for label, pts in series[title]:
                if not pts:
                    continue
                xs, ys = zip(*pts, strict=True)
                (line,) = ax.plot(xs, ys, marker="o", label=label)
                hollow = [(x, y) for x, y in pts if x in marked]
                if hollow:
                    hx, hy = zip(*hollow, strict=True)
                    ax.plot(hx, hy, "o", mfc="white", mec=line.get_color())
            ax.set_xscale("log", base=2)
            loads = sorted({x for _, pts in series[title] for x, _ in pts})
            ax.set_xticks(loads, [f"{x:g}" for x in loads])
            ax.minorticks_off()
            ax.set_title(title)
            ax.set_xlabel(x_label)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            if result.recommendation and result.recommendation.recommended:
                rec = result.recommendation.recommended
                if not math.isinf(rec):
                    ax.axvline(rec, color="green", linestyle="--", linewidth=1)
            if len(series[title]) > 1:
                ax.legend()
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
