"""Is the client, not the server, the bottleneck?

Three signals, taken over each level's measurement window:
- client CPU: process CPU time / wall time (`time.process_time`, with user and system time
  from `resource`). The client runs one event loop on one core, so near 1.0 it is saturated.
- event-loop lag: a ticker sleeps `interval` seconds and records how late it wakes. A busy
  loop wakes it late, and delays every time stamp the client takes by as much.
- achieved against target load: time-averaged in-flight requests against the concurrency
  asked for, or requests started per second against the rate asked for.

A level is client-bound when the client CPU limit is crossed, or when the loop lagged or the
load fell short while the client was busy (at least `min_busy_fraction` of a core). A client
that idles most of the window has capacity to spare: lag and shortfall then come from the
machine (other processes holding the cores, as on a small shared host), not from the client,
and are reported as contention without marking the level. Without that distinction a 2-core
machine flags different levels on identical runs and the recommendation moves with the noise.
A client-bound level's figures are the client's, not the server's; the recommendation skips it.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from dataclasses import dataclass, field

from orchestrator.bench.metrics import percentile


@dataclass(frozen=True, slots=True)
class Limits:
    max_cpu_fraction: float = 0.90  # of one core
    max_loop_lag_p99_ms: float = 5.0
    min_achieved_fraction: float = 0.90  # of the target concurrency or rate
    # Lag or shortfall counts against the client only when it used this much of a core.
    min_busy_fraction: float = 0.50


@dataclass(slots=True)
class LoopLagMonitor:
    """A ticker task: how late `asyncio.sleep(interval)` wakes, in seconds."""

    interval: float = 0.005
    samples: list[float] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick())

    def reset(self) -> None:
        self.samples = []

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _tick(self) -> None:
        interval = self.interval
        clock = time.perf_counter
        while True:
            before = clock()
            await asyncio.sleep(interval)
            self.samples.append(max(0.0, clock() - before - interval))


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    wall: float
    cpu: float
    user: float
    system: float

    @staticmethod
    def take() -> CpuSnapshot:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return CpuSnapshot(time.perf_counter(), time.process_time(), usage.ru_utime, usage.ru_stime)


@dataclass(frozen=True, slots=True)
class ClientCheck:
    """The client's own figures over one window, and the verdict."""

    cpu_fraction: float
    user_s: float
    system_s: float
    loop_lag_mean_ms: float
    loop_lag_p99_ms: float
    loop_lag_max_ms: float
    target: float  # concurrency or rate asked for
    achieved: float  # time-averaged in-flight requests, or requests started per second
    capped: bool  # an open-loop rate was held back by the concurrency cap (not the client)
    client_bound: bool
    reasons: tuple[str, ...]
    # Lag or shortfall seen while the client was mostly idle: the machine's, not the client's.
    contention: tuple[str, ...] = ()


def assess(
    begin: CpuSnapshot,
    end: CpuSnapshot,
    lags: list[float],
    *,
    target: float,
    achieved: float,
    unit: str,
    capped: bool = False,
    limits: Limits | None = None,
) -> ClientCheck:
    limits = limits or Limits()
    wall = max(end.wall - begin.wall, 1e-9)
    cpu_fraction = (end.cpu - begin.cpu) / wall
    lags_ms = sorted(lag * 1000 for lag in lags)
    lag_mean = sum(lags_ms) / len(lags_ms) if lags_ms else 0.0
    lag_p99 = percentile(lags_ms, 99) if lags_ms else 0.0
    reasons = []
    signs = []
    if cpu_fraction >= limits.max_cpu_fraction:
        reasons.append(
            f"client CPU {cpu_fraction:.0%} of a core (limit {limits.max_cpu_fraction:.0%})"
        )
    if lag_p99 > limits.max_loop_lag_p99_ms:
        signs.append(
            f"event loop lag p99 {lag_p99:.1f} ms (limit {limits.max_loop_lag_p99_ms:g} ms)"
        )
    if not capped and target > 0 and achieved < limits.min_achieved_fraction * target:
        signs.append(
            f"achieved {achieved:.1f} of {target:g} {unit} "
            f"(limit {limits.min_achieved_fraction:.0%})"
        )
    busy = cpu_fraction >= limits.min_busy_fraction
    contention: list[str] = []
    if busy:
        reasons += signs
    elif signs:
        contention = [f"{sign} with the client at {cpu_fraction:.0%} of a core" for sign in signs]
    return ClientCheck(
        cpu_fraction=cpu_fraction,
        user_s=end.user - begin.user,
        system_s=end.system - begin.system,
        loop_lag_mean_ms=lag_mean,
        loop_lag_p99_ms=lag_p99,
        loop_lag_max_ms=lags_ms[-1] if lags_ms else 0.0,
        target=target,
        achieved=achieved,
        capped=capped,
        client_bound=bool(reasons),
        reasons=tuple(reasons),
        contention=tuple(contention),
    )
