"""Knee and recommendation on synthetic throughput/latency curves."""

from __future__ import annotations

import math

import pytest

from orchestrator.bench.metrics import Distribution, LevelMetrics
from orchestrator.bench.recommend import LevelView, Rule, find_knee, recommend


def level(load: float, tok_s: float, ttft_p90: float = 50.0, tpot_p90: float = 10.0, *,
          errors: int = 0, attainment: float | None = None, bound: bool = False) -> LevelView:  # fmt: skip
    def dist(p90: float) -> Distribution:
        return Distribution(count=100, mean=p90, p50=p90, p90=p90, p99=p90)

    metrics = LevelMetrics(
        requests=100, completed=100 - errors,
        errors={"connection": 0, "http_status": errors, "stream_break": 0, "timeout": 0},
        span_s=10, window_s=10, throughput_basis="window", request_throughput=tok_s / 100,
        output_throughput=tok_s, total_token_throughput=tok_s * 2, goodput=None,
        slo_attainment=attainment, achieved_concurrency=load, mean_input_tokens=100,
        mean_output_tokens=100, tokens_from_usage=100, tokens_from_chunks=0,
        ttft=dist(ttft_p90), tpot=dist(tpot_p90), itl=dist(tpot_p90), e2el=dist(1000),
    )  # fmt: skip
    return LevelView(load, metrics, bound)


RULE = Rule()


def test_knee_where_throughput_stops_growing() -> None:
    curve = [level(1, 100), level(2, 195), level(4, 380), level(8, 700), level(16, 740),
             level(32, 750)]  # fmt: skip
    knee, reason = find_knee(curve, RULE)
    assert knee == 8
    assert reason.startswith("throughput grew +6% per doubling from 8 to 16")
    rec = recommend(curve, RULE, slo_given=False)
    assert rec.recommended == 8  # 16 and 32 give more tokens, but they lie past the knee


def test_gain_is_normalised_per_doubling() -> None:
    # 8 -> 32 is two doublings: +30% in total is +14% per doubling, still growing
    assert find_knee([level(8, 1000), level(32, 1300)], RULE)[0] is None
    # +15% over two doublings is +7% per doubling: the knee is at 8
    assert find_knee([level(8, 1000), level(32, 1150)], RULE)[0] == 8


def test_knee_where_latency_turns_up() -> None:
    curve = [level(1, 100, ttft_p90=40), level(2, 200, ttft_p90=45),
             level(4, 400, ttft_p90=52), level(8, 800, ttft_p90=120)]  # fmt: skip
    knee, reason = find_knee(curve, RULE)
    assert knee == 4
    assert "p90 TTFT grew +131%" in reason
    curve_tpot = [level(1, 100, tpot_p90=10), level(2, 200, tpot_p90=16)]
    assert find_knee(curve_tpot, RULE)[0] == 1


def test_small_latency_changes_are_noise() -> None:
    # 1.0 -> 2.5 ms is +150%, but only 1.5 ms: below the 2 ms floor
    curve = [level(1, 100, tpot_p90=1.0), level(2, 200, tpot_p90=2.5)]
    assert find_knee(curve, RULE)[0] is None


def test_no_knee_recommends_the_best_level() -> None:
    curve = [level(1, 100), level(2, 200), level(4, 400)]
    rec = recommend(curve, RULE, slo_given=False)
    assert rec.knee is None and rec.recommended == 4
    assert rec.knee_reason == "throughput still grew at 4: no knee within the levels"


def test_slo_limits_the_candidates() -> None:
    curve = [level(1, 100, attainment=1.0), level(2, 200, attainment=0.95),
             level(4, 400, attainment=0.5)]  # fmt: skip
    rec = recommend(curve, RULE, slo_given=True)
    assert rec.recommended == 2
    assert rec.meets_slo == (1, 2)
    nothing = recommend([level(1, 100, attainment=0.2)], RULE, slo_given=True)
    assert nothing.recommended is None and nothing.reason == "no usable level met the SLO"


def test_levels_with_errors_are_not_recommended() -> None:
    curve = [level(1, 100), level(2, 200), level(4, 400, errors=5)]
    assert recommend(curve, RULE, slo_given=False).recommended == 2


def test_client_bound_levels_are_ignored_and_said_so() -> None:
    curve = [level(1, 100), level(2, 200), level(4, 250, bound=True), level(8, 780)]
    knee, _ = find_knee(curve, RULE)
    assert knee is None  # 2 -> 8 is +98% per doubling once 4 is left out
    rec = recommend(curve, RULE, slo_given=False)
    assert rec.recommended == 8
    assert rec.skipped_client_bound == (4,)
    assert rec.reason.endswith("; client-bound levels ignored: 4")


def test_all_client_bound_gives_no_recommendation() -> None:
    rec = recommend([level(1, 100, bound=True), level(2, 190, bound=True)], RULE, slo_given=False)
    assert rec.recommended is None
    assert rec.reason == (
        "no usable level (each was client-bound, failed, or had over 1% errors); "
        "client-bound levels ignored: 1, 2"
    )


def test_an_infinite_rate_counts_as_one_doubling() -> None:
    assert find_knee([level(10, 1000), level(math.inf, 1500)], RULE)[0] is None
    assert find_knee([level(10, 1000), level(math.inf, 1050)], RULE)[0] == 10


@pytest.mark.parametrize("loads", [(1, 2), (3, 6)])
def test_one_doubling_steps_compare_directly(loads: tuple[int, int]) -> None:
    a, b = loads
    assert find_knee([level(a, 100), level(b, 109)], RULE)[0] == a
    assert find_knee([level(a, 100), level(b, 111)], RULE)[0] is None
