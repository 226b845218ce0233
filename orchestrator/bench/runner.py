"""Run a whole sweep: resolve the model, prepare requests, run each level, judge the client."""

from __future__ import annotations

import asyncio
import math
import platform
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol

from orchestrator.bench.bounds import (
    LevelFailure,
    check_fits_context,
    connection_cap,
    level_failure,
    served_context,
    use_proxy,
)
from orchestrator.bench.client import first_model, get_json, make_session, model_listing
from orchestrator.bench.loadgen import LevelRun, LevelSpec, Progress, run_level
from orchestrator.bench.metrics import LevelMetrics, summarise
from orchestrator.bench.options import BenchOptions
from orchestrator.bench.recommend import LevelView, Recommendation, recommend
from orchestrator.bench.records import RequestRecord
from orchestrator.bench.selfcheck import ClientCheck, assess
from orchestrator.bench.workload import (
    ENDPOINT_PATHS,
    SYNTHETIC_PROMPTS,
    PreparedRequest,
    cycle,
    lazy_synthetic,
    load_dataset,
    prepare,
    synthetic_items,
)
from orchestrator.errors import BenchError


@dataclass(slots=True)
class LevelResult:
    load: float
    spec: LevelSpec
    metrics: LevelMetrics
    check: ClientCheck
    records: list[RequestRecord]
    cancelled: int
    failure: LevelFailure | None = None  # most requests failed: an error, not a measurement


@dataclass(slots=True)
class BenchResult:
    options: BenchOptions
    model: str
    url: str
    started_at: str
    levels: list[LevelResult] = field(default_factory=list)
    recommendation: Recommendation | None = None
    client: dict[str, str] = field(default_factory=dict)
    # Per level: the plan's prediction at the measured lengths and load (`deploy bench` on a
    # deployment deploy planned); None elsewhere.
    predicted: list[dict[str, Any] | None] = field(default_factory=list)
    # The plan's GPU, engine, version and layout beside those predictions (`deploy calibrate`).
    planned: dict[str, Any] | None = None


class ProgressSink(Protocol):
    def level_started(self, progress: Progress) -> None: ...

    def level_finished(self, result: LevelResult) -> None: ...


def run_bench(options: BenchOptions, sink: ProgressSink | None = None) -> BenchResult:
    """Run every level in order; raises `BenchError` (exit 2) before the first request."""
    loop = _new_loop(options.event_loop)
    try:
        asyncio.set_event_loop(loop)
        result = loop.run_until_complete(_run(options, sink))
        result.client["event_loop"] = options.event_loop
        return result
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        try:
            import uvloop  # type: ignore[import-not-found]
        except ImportError:
            raise BenchError(
                "--event-loop uvloop needs the uvloop package", "pip install uvloop"
            ) from None
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


def _requests(options: BenchOptions, model: str) -> Iterator[PreparedRequest]:
    """Request bodies in order, without end: a dataset's, or synthetic prompts made lazily."""
    if options.dataset is not None:
        return cycle(_prepared(options, model))
    return lazy_synthetic(
        options.input_len,
        options.output_len,
        SYNTHETIC_PROMPTS,
        options.seed,
        model=model,
        endpoint=options.endpoint,
        ignore_eos=options.ignore_eos,
    )


def _prepared(options: BenchOptions, model: str) -> list[PreparedRequest]:
    if options.dataset is not None:
        items = load_dataset(options.dataset, options.output_len)
    else:
        items = synthetic_items(options.input_len, options.output_len, 64, options.seed)
    return prepare(items, model=model, endpoint=options.endpoint, ignore_eos=options.ignore_eos)


async def _run(options: BenchOptions, sink: ProgressSink | None) -> BenchResult:
    import aiohttp

    if options.dataset is not None:  # a malformed dataset fails before any network traffic
        _prepared(options, options.model or "model")
    uncapped = options.rates and not options.concurrency
    max_connections = connection_cap() if uncapped else max(options.concurrency)
    session = make_session(
        max_connections,
        options.request_timeout,
        options.api_key,
        options.credentials,
        trust_env=use_proxy(options.base_url, options.no_proxy),
    )
    async with session:
        if options.model is None:
            listing = await get_json(session, options.base_url + "/v1/models")
            model = await first_model(session, options.base_url, listing)
        else:
            listing = await model_listing(session, options.base_url)
            model = options.model
        check_fits_context(
            model,
            served_context(listing, model),
            options.input_len,
            options.output_len,
            synthetic=options.dataset is None,
        )
        requests = _requests(options, model)
        url = options.base_url + ENDPOINT_PATHS[options.endpoint]
        result = BenchResult(
            options=options,
            model=model,
            url=url,
            started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            client={
                "python": platform.python_version(),
                "aiohttp": aiohttp.__version__,
                "platform": platform.platform(terse=True),
            },
        )
        number = 0
        for index, load in enumerate(options.loads):
            spec = _spec(options, index, load)
            progress = Progress()
            if sink is not None:
                sink.level_started(progress)
            run = await run_level(
                session, url, spec, requests, progress, first_number=number, seed=options.seed
            )
            number += len(run.records)
            level = _judge(options, load, run)
            result.levels.append(level)
            if sink is not None:
                sink.level_finished(level)
            if level.failure is not None:
                break  # the server is failing: higher levels would only measure that
    views = [
        LevelView(lv.load, lv.metrics, lv.check.client_bound, lv.check.loop_lag_p99_ms)
        for lv in result.levels
    ]
    result.recommendation = recommend(views, options.rule, slo_given=not options.slo.empty)
    return result


def _spec(options: BenchOptions, index: int, load: float) -> LevelSpec:
    if options.rates:
        cap = options.concurrency[0] if options.concurrency else None
        rate = load
        warmup_default = cap or (50 if math.isinf(rate) else max(1, math.ceil(rate)))
        concurrency = cap
    else:
        rate = None
        concurrency = int(load)
        warmup_default = concurrency
    return LevelSpec(
        index=index,
        concurrency=concurrency,
        rate=rate,
        requests=options.requests_for(load),
        duration=options.duration,
        warmup=options.warmup if options.warmup is not None else warmup_default,
        drain_timeout=options.drain_timeout,
    )


def _judge(options: BenchOptions, load: float, run: LevelRun) -> LevelResult:
    metrics = summarise(
        run.records, window_start=run.window_start, window_end=run.window_end, slo=options.slo
    )
    if run.spec.rate is None:
        target, achieved, unit = load, metrics.achieved_concurrency, "requests in flight"
    else:
        window = max(run.window_end - run.window_start, 1e-9)
        target = 0.0 if math.isinf(load) else load
        achieved, unit = metrics.requests / window, "requests/s started"
    check = assess(
        run.cpu_begin,
        run.cpu_end,
        run.loop_lags,
        target=target,
        achieved=achieved,
        unit=unit,
        capped=run.capped,
        limits=options.limits,
    )
    failure = level_failure(load, run.records)
    if failure is not None:
        # Failed requests end early and leave slots idle: that shortfall is the server's.
        check = replace(check, client_bound=False, reasons=())
    return LevelResult(load, run.spec, metrics, check, run.records, run.cancelled, failure)
