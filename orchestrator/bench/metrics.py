"""Per-level figures from request records, with vLLM's definitions.

- TTFT: send to the first content-bearing chunk.
- TPOT: per request, (E2E - TTFT) / (output tokens - 1); requests of one token have none.
- ITL: every gap between consecutive content-bearing chunks, of all requests pooled.
- E2E: send to the end of the stream.
- Percentiles: linear interpolation between closest ranks (NumPy's default, "linear", type 7
  of Hyndman and Fan): the p-th percentile of sorted x[0..n-1] is x[k] + (x[k+1] - x[k]) * f
  where k + f = (n - 1) * p / 100.
- Latencies and error counts: only requests that STARTED inside the measurement window.
- Throughputs are rates over the window: successful requests (of any phase) that FINISHED
  inside [open, close], and their tokens, divided by the window's length. In steady state this
  is the server's rate; dividing the counted requests by the time until the last of them
  finished (vLLM's "benchmark duration") would fold the ramp-up and drain tails in and
  understate it by about E2E / window. When the window is shorter than the counted requests'
  mean E2E (too short to hold a steady state; e.g. `--requests` below the concurrency), the
  basis falls back to vLLM's: counted successful requests over the span from the window's
  opening to the end of the last counted request. `throughput_basis` names the one used.
- Goodput: the same rate, counting only successful requests that met every SLO limit given.
- Achieved concurrency: in-flight requests averaged over the window (any request's overlap
  with the window, warm-up ones included, summed and divided by the window's length).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from orchestrator.bench.records import ERROR_KINDS, RequestRecord

PERCENTILES = (50, 90, 99)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Linear-interpolation percentile of already sorted values (NumPy's default)."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is outside 0..100")
    rank = (n - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, n - 1)
    fraction = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


@dataclass(frozen=True, slots=True)
class Distribution:
    """Mean and percentiles, in milliseconds."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float

    @staticmethod
    def of_seconds(values: Iterable[float]) -> Distribution | None:
        ordered = sorted(v * 1000.0 for v in values)
        if not ordered:
            return None
        return Distribution(
            count=len(ordered),
            mean=sum(ordered) / len(ordered),
            p50=percentile(ordered, 50),
            p90=percentile(ordered, 90),
            p99=percentile(ordered, 99),
        )


@dataclass(frozen=True, slots=True)
class Slo:
    """Per-request limits in milliseconds; None = no limit on that metric."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None

    @property
    def empty(self) -> bool:
        return self.ttft_ms is None and self.tpot_ms is None and self.e2el_ms is None

    def met_by(self, record: RequestRecord) -> bool:
        if not record.ok:
            return False
        if self.ttft_ms is not None:
            ttft = record.ttft
            if ttft is None or ttft * 1000 > self.ttft_ms:
                return False
        if self.tpot_ms is not None:
            tpot = record.tpot
            # a one-token output has no TPOT, so it cannot break the limit
            if tpot is not None and tpot * 1000 > self.tpot_ms:
                return False
        return self.e2el_ms is None or record.e2el * 1000 <= self.e2el_ms


@dataclass(frozen=True, slots=True)
class LevelMetrics:
    requests: int  # counted (started inside the window)
    completed: int
    errors: dict[str, int]
    span_s: float  # window opening to the end of the last counted request
    window_s: float
    throughput_basis: str  # "window" or "span" (see the module notes)
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    goodput: float | None  # requests/s meeting the SLO; None without an SLO
    slo_attainment: float | None  # fraction of counted requests meeting the SLO
    achieved_concurrency: float
    mean_input_tokens: float
    mean_output_tokens: float
    tokens_from_usage: int  # completed requests whose count came from the server's usage
    tokens_from_chunks: int  # ... from counted content chunks
    ttft: Distribution | None
    tpot: Distribution | None
    itl: Distribution | None
    e2el: Distribution | None


def achieved_concurrency(
    records: Iterable[RequestRecord], window_start: float, window_end: float
) -> float:
    """Time-averaged in-flight requests over [window_start, window_end]."""
    length = window_end - window_start
    if length <= 0:
        return 0.0
    busy = 0.0
    for record in records:
        end = record.end if record.end > 0 else window_end
        overlap = min(end, window_end) - max(record.start, window_start)
        if overlap > 0:
            busy += overlap
    return busy / length


def summarise(
    records: Sequence[RequestRecord],
    *,
    window_start: float,
    window_end: float,
    slo: Slo | None = None,
) -> LevelMetrics:
    counted = [r for r in records if r.in_window]
    done = [r for r in counted if r.ok]
    errors = dict.fromkeys(ERROR_KINDS, 0)
    for record in counted:
        if record.error_kind is not None:
            errors[record.error_kind] = errors.get(record.error_kind, 0) + 1
    last_end = max((r.end for r in counted), default=window_end)
    span = max(last_end - window_start, 1e-9)
    window = window_end - window_start
    mean_e2el = sum(r.e2el for r in done) / len(done) if done else 0.0
    if window > 0 and window >= mean_e2el:
        basis, duration = "window", window
        rated = [r for r in records if r.ok and window_start <= r.end <= window_end]
    else:
        basis, duration, rated = "span", span, done
    rated_output = sum(r.output_tokens for r in rated)
    rated_input = sum(_input_tokens(r) for r in rated)
    slo_given = slo is not None and not slo.empty
    good = None
    attainment = None
    if slo is not None and slo_given:
        good = sum(1 for r in rated if slo.met_by(r)) / duration
        met = sum(1 for r in counted if slo.met_by(r))
        attainment = met / len(counted) if counted else 0.0
    from_usage = sum(1 for r in done if r.usage_tokens is not None)
    itls = [gap for r in done for gap in r.itls()]
    return LevelMetrics(
        requests=len(counted),
        completed=len(done),
        errors=errors,
        span_s=span,
        window_s=max(window, 0.0),
        throughput_basis=basis,
        request_throughput=len(rated) / duration,
        output_throughput=rated_output / duration,
        total_token_throughput=(rated_output + rated_input) / duration,
        goodput=good,
        slo_attainment=attainment,
        achieved_concurrency=achieved_concurrency(records, window_start, window_end),
        mean_input_tokens=sum(_input_tokens(r) for r in done) / len(done) if done else 0.0,
        mean_output_tokens=sum(r.output_tokens for r in done) / len(done) if done else 0.0,
        tokens_from_usage=from_usage,
        tokens_from_chunks=len(done) - from_usage,
        ttft=Distribution.of_seconds(t for r in done if (t := r.ttft) is not None),
        tpot=Distribution.of_seconds(t for r in done if (t := r.tpot) is not None),
        itl=Distribution.of_seconds(itls),
        e2el=Distribution.of_seconds(r.e2el for r in done),
    )


def _input_tokens(record: RequestRecord) -> int:
    return record.prompt_tokens if record.prompt_tokens is not None else record.input_len
