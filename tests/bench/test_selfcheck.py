"""The client's self-check: CPU, event-loop lag, achieved load."""

from __future__ import annotations

import asyncio
import time

import pytest

from orchestrator.bench.selfcheck import CpuSnapshot, Limits, LoopLagMonitor, assess


def snap(wall: float, cpu: float) -> CpuSnapshot:
    return CpuSnapshot(wall=wall, cpu=cpu, user=cpu, system=0.0)


def test_a_calm_client_is_not_client_bound() -> None:
    check = assess(snap(0, 0), snap(10, 2), [0.0005] * 100, target=8, achieved=7.9,
                   unit="requests in flight")  # fmt: skip
    assert check.cpu_fraction == pytest.approx(0.2)
    assert check.loop_lag_p99_ms == pytest.approx(0.5)
    assert not check.client_bound and check.reasons == ()


def test_each_limit_gives_its_reason() -> None:
    check = assess(snap(0, 0), snap(10, 9.5), [0.001] * 90 + [0.02] * 10, target=64,
                   achieved=40.0, unit="requests in flight")  # fmt: skip
    assert check.client_bound
    assert check.reasons == (
        "client CPU 95% of a core (limit 90%)",
        "event loop lag p99 20.0 ms (limit 5 ms)",
        "achieved 40.0 of 64 requests in flight (limit 90%)",
    )


def test_a_capped_open_loop_is_not_blamed_on_the_client() -> None:
    check = assess(snap(0, 0), snap(10, 1), [], target=100, achieved=50, unit="requests/s",
                   capped=True)  # fmt: skip
    assert not check.client_bound


def test_limits_are_adjustable() -> None:
    check = assess(snap(0, 0), snap(10, 5), [], target=1, achieved=1, unit="x",
                   limits=Limits(max_cpu_fraction=0.4))  # fmt: skip
    assert check.reasons == ("client CPU 50% of a core (limit 40%)",)


def test_loop_lag_monitor_sees_a_blocked_loop() -> None:
    async def main() -> list[float]:
        monitor = LoopLagMonitor(interval=0.002)
        monitor.start()
        await asyncio.sleep(0.02)
        time.sleep(0.05)  # block the loop: the ticker wakes about 50 ms late
        await asyncio.sleep(0.02)
        await monitor.stop()
        return monitor.samples

    samples = asyncio.run(main())
    assert max(samples) >= 0.04
    assert sorted(samples)[len(samples) // 2] < 0.01


def test_cpu_snapshot_measures_this_process() -> None:
    begin = CpuSnapshot.take()
    deadline = time.perf_counter() + 10
    while time.process_time() - begin.cpu < 0.03 and time.perf_counter() < deadline:
        pass
    end = CpuSnapshot.take()
    assert end.cpu - begin.cpu >= 0.03
    assert end.wall - begin.wall >= end.cpu - begin.cpu - 0.001  # one thread: CPU <= wall
    assert end.user + end.system - begin.user - begin.system == pytest.approx(
        end.cpu - begin.cpu, abs=0.02
    )
