"""Metric definitions on hand-made request records."""

from __future__ import annotations

import pytest

from orchestrator.bench.metrics import (
    Distribution,
    Slo,
    achieved_concurrency,
    percentile,
    summarise,
)
from orchestrator.bench.records import ERROR_HTTP, ERROR_STREAM, RequestRecord


def record(start: float, chunks: list[float], end: float, *, usage: int | None = None,
           window: bool = True, error: str | None = None) -> RequestRecord:  # fmt: skip
    return RequestRecord(0, 0, start=start, end=end, chunk_times=chunks, usage_tokens=usage,
                         in_window=window, warmup=not window, error_kind=error)  # fmt: skip


def test_percentile_interpolates_linearly_between_closest_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 90) == pytest.approx(3.7)  # rank 2.7
    assert percentile([5.0], 99) == 5.0
    assert percentile(list(map(float, range(101))), 99) == pytest.approx(99.0)


def test_percentile_rejects_empty_and_out_of_range() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_ttft_tpot_itl_e2el_follow_vllm_definitions() -> None:
    r = record(10.0, [10.1, 10.13, 10.15, 10.2], 10.25)
    assert r.ttft == pytest.approx(0.1)
    assert r.e2el == pytest.approx(0.25)
    # (e2e - ttft) / (tokens - 1) with tokens counted from chunks
    assert r.tpot == pytest.approx(0.15 / 3)
    assert r.itls() == pytest.approx([0.03, 0.02, 0.05])
    assert r.token_source == "chunks"


def test_usage_count_wins_over_chunks_for_tpot() -> None:
    # two chunks arrived but the server reports 6 tokens (several tokens per chunk)
    r = record(0.0, [0.1, 0.3], 0.35, usage=6)
    assert r.output_tokens == 6
    assert r.token_source == "usage"
    assert r.tpot == pytest.approx(0.25 / 5)


def test_single_token_output_has_no_tpot() -> None:
    assert record(0.0, [0.1], 0.1).tpot is None
    assert record(0.0, [], 0.1).ttft is None


def test_distribution_reports_milliseconds() -> None:
    dist = Distribution.of_seconds([0.001, 0.002, 0.003, 0.004])
    assert dist is not None
    assert (dist.count, dist.mean, dist.p50) == (4, pytest.approx(2.5), pytest.approx(2.5))
    assert dist.p90 == pytest.approx(3.7)
    assert Distribution.of_seconds([]) is None


def test_achieved_concurrency_is_time_averaged_in_flight() -> None:
    records = [
        record(0.0, [], 10.0),  # whole window
        record(5.0, [], 15.0),  # half of it
        record(-5.0, [], 2.5, window=False),  # a warm-up request overlapping the start
    ]
    assert achieved_concurrency(records, 0.0, 10.0) == pytest.approx(1.75)


def test_summary_counts_window_starts_and_rates_over_the_window() -> None:
    records = [
        # warm-up request finishing inside the window: counts for the rate, not latencies
        record(-1.0, [-0.9, 0.5], 0.5, window=False),
        record(0.0, [0.1, 0.2, 0.3], 0.3, usage=3),
        record(0.5, [0.7, 0.8], 0.9),
        record(1.0, [], 1.1, error=ERROR_HTTP),
        record(1.5, [1.6], 1.7, error=ERROR_STREAM),
        record(1.8, [1.9, 2.0], 2.5),  # started inside, finished after the window closed
    ]
    m = summarise(records, window_start=0.0, window_end=2.0)
    assert m.requests == 5
    assert m.completed == 3
    assert m.errors == {"connection": 0, "http_status": 1, "stream_break": 1, "timeout": 0}
    assert m.throughput_basis == "window"
    # finished inside [0, 2] and successful: the warm-up one, and two counted ones
    assert m.request_throughput == pytest.approx(3 / 2.0)
    assert m.output_throughput == pytest.approx((2 + 3 + 2) / 2.0)
    assert m.span_s == pytest.approx(2.5)
    assert m.tokens_from_usage == 1 and m.tokens_from_chunks == 2
    assert m.ttft is not None and m.ttft.count == 3
    assert m.ttft.mean == pytest.approx((100 + 200 + 100) / 3)
    assert m.itl is not None and m.itl.count == 2 + 1 + 1


def test_short_window_falls_back_to_the_span_basis() -> None:
    # --requests 1: the window closes as its only request starts
    records = [record(0.0, [0.1, 0.2], 0.4)]
    m = summarise(records, window_start=0.0, window_end=0.0)
    assert m.throughput_basis == "span"
    assert m.request_throughput == pytest.approx(1 / 0.4)


def test_goodput_and_attainment_under_an_slo() -> None:
    records = [
        record(0.0, [0.05, 0.1], 0.1),  # ttft 50, tpot 50
        record(0.0, [0.2, 0.25], 0.25),  # ttft 200: misses
        record(0.1, [0.15, 0.35], 0.35),  # tpot 200: misses
        record(0.2, [], 0.3, error=ERROR_HTTP),  # an error never meets the SLO
    ]
    slo = Slo(ttft_ms=100, tpot_ms=100)
    assert [slo.met_by(r) for r in records] == [True, False, False, False]
    m = summarise(records, window_start=0.0, window_end=1.0, slo=slo)
    assert m.slo_attainment == pytest.approx(0.25)
    assert m.goodput == pytest.approx(1.0)
    assert Slo(e2el_ms=120).met_by(records[0]) and not Slo(e2el_ms=90).met_by(records[0])
    no_slo = summarise(records, window_start=0.0, window_end=1.0)
    assert no_slo.goodput is None and no_slo.slo_attainment is None
