"""Drive one load level: warm-up, measurement window, drain.

Closed loop (`--concurrency C`): C workers, each sends its next request when the last ends.
Open loop (`--rate R`): requests arrive as a Poisson process of R per second (exponential
gaps; `inf` sends them all at once), optionally held back by a concurrency cap.

Phases, kept apart:
- warm-up: requests sent until `warmup` of them have finished. They do not count.
- window: opens when the warm-up has finished. Requests that START inside it count; it closes
  after `duration` seconds or once `requests` requests have started.
- drain: no new requests; the ones in flight may finish for up to `drain_timeout` seconds,
  then they are cancelled and counted as timeouts.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING

from orchestrator.bench.client import stream_request
from orchestrator.bench.records import ERROR_CONNECTION, RequestRecord
from orchestrator.bench.selfcheck import CpuSnapshot, LoopLagMonitor
from orchestrator.bench.workload import PreparedRequest

if TYPE_CHECKING:
    import aiohttp


CONNECTION_RETRY_PAUSE = 0.05  # seconds a closed-loop worker waits after a connection error


@dataclass(frozen=True, slots=True)
class LevelSpec:
    index: int
    concurrency: int | None  # closed-loop workers, or the cap of an open loop
    rate: float | None  # None: closed loop; math.inf: all at once
    requests: int | None  # the window closes after this many started ...
    duration: float | None  # ... or after this many seconds
    warmup: int
    drain_timeout: float

    @property
    def label(self) -> str:
        if self.rate is None:
            return f"c={self.concurrency}"
        rate = "inf" if math.isinf(self.rate) else f"{self.rate:g}"
        cap = f", c<={self.concurrency}" if self.concurrency else ""
        return f"rate={rate}/s{cap}"


@dataclass(slots=True)
class Progress:
    """Counters the live display reads; plain ints, updated on the event loop."""

    label: str = ""
    phase: str = "warm-up"
    started: int = 0
    finished: int = 0
    errors: int = 0
    in_window: int = 0
    target: int | None = None
    duration: float | None = None
    window_open_at: float | None = None


@dataclass(slots=True)
class LevelRun:
    spec: LevelSpec
    records: list[RequestRecord]
    window_start: float
    window_end: float
    cpu_begin: CpuSnapshot
    cpu_end: CpuSnapshot
    loop_lags: list[float]
    capped: bool  # an open-loop arrival waited on the concurrency cap inside the window
    cancelled: int  # requests cancelled at the drain bound


@dataclass(slots=True)
class _Window:
    spec: LevelSpec
    monitor: LoopLagMonitor
    progress: Progress
    warmup_left: int
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    open_at: float = 0.0
    close_at: float = 0.0
    started: int = 0
    cpu_begin: CpuSnapshot | None = None
    cpu_end: CpuSnapshot | None = None
    lags: list[float] = field(default_factory=list)

    def open(self) -> None:
        self.monitor.reset()
        self.cpu_begin = CpuSnapshot.take()
        self.open_at = self.cpu_begin.wall
        self.opened.set()
        self.progress.phase = "window"
        self.progress.window_open_at = self.open_at

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.cpu_end = CpuSnapshot.take()
        self.close_at = self.cpu_end.wall
        self.lags = self.monitor.samples
        self.monitor.reset()
        self.closed.set()
        self.progress.phase = "drain"

    def new_record(self, number: int, prepared: PreparedRequest) -> RequestRecord:
        record = RequestRecord(number, self.spec.index, input_len=prepared.input_len)
        if self.opened.is_set():
            record.in_window = True
            self.started += 1
            self.progress.in_window = self.started
            if self.spec.requests is not None and self.started >= self.spec.requests:
                self.close()
        else:
            record.warmup = True
        self.progress.started += 1
        return record

    def finished(self, record: RequestRecord) -> None:
        self.progress.finished += 1
        if record.error_kind is not None:
            self.progress.errors += 1
        if record.warmup and not self.opened.is_set():
            self.warmup_left -= 1
            if self.warmup_left <= 0:
                self.open()


async def run_level(
    session: aiohttp.ClientSession,
    url: str,
    spec: LevelSpec,
    requests: Iterator[PreparedRequest],
    progress: Progress,
    *,
    first_number: int = 0,
    seed: int = 0,
) -> LevelRun:
    monitor = LoopLagMonitor()
    monitor.start()
    window = _Window(spec, monitor, progress, spec.warmup)
    progress.label = spec.label
    progress.target = spec.requests
    progress.duration = spec.duration
    if spec.warmup <= 0:
        window.open()
    records: list[RequestRecord] = []
    numbers = iter(range(first_number, 1 << 62))
    timer = asyncio.get_running_loop().create_task(_close_after_duration(window))
    tasks: set[asyncio.Task[None]] = set()
    capped = False
    try:
        if spec.rate is None:
            for _ in range(spec.concurrency or 1):
                tasks.add(
                    asyncio.create_task(_worker(session, url, window, requests, numbers, records))
                )
        else:
            capped = await _arrivals(session, url, window, requests, numbers, records, tasks, seed)
        await _drain(window, tasks, spec.drain_timeout)
    finally:
        timer.cancel()
        await monitor.stop()
    cancelled = sum(1 for r in records if r.error == "still running at the drain bound")
    assert window.cpu_begin is not None and window.cpu_end is not None
    return LevelRun(
        spec=spec,
        records=records,
        window_start=window.open_at,
        window_end=window.close_at,
        cpu_begin=window.cpu_begin,
        cpu_end=window.cpu_end,
        loop_lags=window.lags,
        capped=capped,
        cancelled=cancelled,
    )


async def _close_after_duration(window: _Window) -> None:
    await window.opened.wait()
    if window.spec.duration is not None:
        try:
            await asyncio.wait_for(window.closed.wait(), window.spec.duration)
        except asyncio.TimeoutError:
            window.close()


async def _worker(
    session: aiohttp.ClientSession,
    url: str,
    window: _Window,
    requests: Iterator[PreparedRequest],
    numbers: Iterator[int],
    records: list[RequestRecord],
) -> None:
    closed = window.closed
    while not closed.is_set():
        prepared = next(requests)
        number = next(numbers)
        record = window.new_record(number, prepared)
        records.append(record)
        await stream_request(session, url, prepared.body(number), record)
        window.finished(record)
        if record.error_kind == ERROR_CONNECTION:
            # a server that went away refuses in microseconds: pace the retries so a dead
            # endpoint yields a countable number of errors, not a busy loop
            await asyncio.sleep(CONNECTION_RETRY_PAUSE)


async def _one(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    record: RequestRecord,
    window: _Window,
    cap: asyncio.Semaphore | None,
) -> None:
    try:
        await stream_request(session, url, body, record)
        window.finished(record)
    finally:
        if cap is not None:
            cap.release()


async def _arrivals(
    session: aiohttp.ClientSession,
    url: str,
    window: _Window,
    requests: Iterator[PreparedRequest],
    numbers: Iterator[int],
    records: list[RequestRecord],
    tasks: set[asyncio.Task[None]],
    seed: int,
) -> bool:
    """Issue requests at Poisson arrival times until the window closes; True if ever capped."""
    spec = window.spec
    rate = spec.rate or math.inf
    rng = random.Random(seed)
    cap = asyncio.Semaphore(spec.concurrency) if spec.concurrency else None
    capped = False
    due = perf_counter()
    closed = window.closed
    while not closed.is_set():
        if not math.isinf(rate):
            due += rng.expovariate(rate)
            delay = due - perf_counter()
            if delay > 0:
                try:
                    await asyncio.wait_for(closed.wait(), delay)
                    break
                except asyncio.TimeoutError:
                    pass
        if cap is not None:
            if cap.locked() and window.opened.is_set():
                capped = True
            await cap.acquire()
            if closed.is_set():
                cap.release()
                break
        prepared = next(requests)
        number = next(numbers)
        record = window.new_record(number, prepared)
        records.append(record)
        task = asyncio.create_task(_one(session, url, prepared.body(number), record, window, cap))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if math.isinf(rate):
            await asyncio.sleep(0)  # let the sends start; the loop still never waits
    return capped


async def _drain(window: _Window, tasks: set[asyncio.Task[None]], bound: float) -> None:
    """Wait for the window to close, then for in-flight requests, for at most `bound` s."""
    await window.closed.wait()
    pending = set(tasks)
    if pending:
        _, pending = await asyncio.wait(pending, timeout=bound)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
