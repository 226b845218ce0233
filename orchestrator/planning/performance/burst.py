"""A burst: `num_requests` sent at once, run engine step by engine step.

`vllm bench serve` without a rate or a concurrency sends every request at t = 0. What the
client then measures is shaped by three things a steady-state formula misses:

- Admission. One front end admits the requests one after another (`frontend_s`, or
  `sglang_frontend_s`, each: HTTP, chat template, tokenizer), so the engine sees them arrive at
  that pace for N of them; the median request's TTFT is about half of that admission.
- Prefill scheduling. SGLang runs waiting prompts first, as batches of their own of up to its
  chunked-prefill size (`scheduler.py`: a new prefill batch before the running batch's
  decode, mixed chunks off by default), and the running requests get no token meanwhile. vLLM
  V1 fills each step's token budget with the running requests' decode tokens first and the
  waiting prompts' chunks after (`v1/core/sched/scheduler.py`), so decode never pauses but
  every step carries the prompts' compute.
- The tail. Output lengths vary (ShareGPT; taken as exponential around the mean), so the batch
  shrinks as requests finish and the longest, about osl x H_N tokens, finish almost alone.

What the client reports follows `vllm/benchmarks/serve.py`: TTFT from the send, each request's
TPOT (latency - TTFT) / (output tokens - 1) and their median, output throughput over the time
to the last response, the peak as the most stream events in one of the one-second buckets
counted from the start.

The simulation is a fluid one: requests in fractions, decode steps in runs of equal steps
between events (an arrival, a finish), so a burst costs a few hundred iterations.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.planning.performance.efficiency import Efficiency, frontend_seconds
from orchestrator.planning.performance.steps import (
    Instance,
    decode_step,
    graph_max_batch,
    prefill_batch_seconds,
    prefill_share_seconds,
    tokens_per_step,
)

# Output-length classes a varied burst is split into (exponential quantiles), besides the
# longest request of the burst.
LENGTH_CLASSES = 8
# Iterations of one simulation: a burst of thousands of requests takes a few thousand; past
# the bound, the tokens left are charged at the pace reached so far instead of being stepped.
MAX_ITERATIONS = 20_000
EPSILON = 1e-9


@dataclass(frozen=True)
class BurstResult:
    """What `vllm bench serve` reports for a burst (seconds; events per second)."""

    ttft_s: float
    tpot_s: float
    duration_s: float
    peak_events_per_s: float
    largest_batch: float


def output_lengths(osl: float, varied: bool, count: int) -> list[tuple[float, float]]:
    """(share of the requests, output tokens). Fixed lengths: one class. Varied: the midpoints
    of LENGTH_CLASSES exponential quantiles, and the longest of `count` requests (the expected
    maximum of `count` exponentials: osl x H_count) as its own class; the classes are scaled so
    that the mean stays `osl`."""
    if not varied or count < 2:
        return [(1.0, osl)]
    longest = osl * sum(1.0 / i for i in range(1, count + 1))
    share = (1.0 - 1.0 / count) / LENGTH_CLASSES
    quantiles = [-math.log(1.0 - (j + 0.5) / LENGTH_CLASSES) for j in range(LENGTH_CLASSES)]
    # Mean of the classes so that the whole burst's mean is osl.
    target = (osl - longest / count) / (1.0 - 1.0 / count)
    scale = target / (sum(quantiles) / LENGTH_CLASSES)
    return [(share, max(1.0, q * scale)) for q in quantiles] + [(1.0 / count, longest)]


def step_table(
    inst: Instance, context: float, largest: float, eff: Efficiency
) -> Callable[[float], float]:
    """Decode-step seconds as a function of the running batch: `decode_step` at doubling batch
    sizes and on both sides of the CUDA-graph cap, linear in between."""
    graph = graph_max_batch(inst) * inst.kv_pools * inst.par.pp
    points = _doubling(1.0, largest)
    if graph < largest:
        points += [float(graph), float(graph) + 1]
    return _table(lambda batch: decode_step(inst, batch, context, eff).seconds, points)


def _doubling(low: float, high: float) -> list[float]:
    """low, 2 low, 4 low, ... and high."""
    points = [low]
    while points[-1] * 2 < high:
        points.append(points[-1] * 2)
    return [*points, max(low, high)]


def _table(function: Callable[[float], float], points: list[float]) -> Callable[[float], float]:
    """`function` evaluated at `points` and interpolated linearly between them."""
    xs = sorted(set(points))
    ys = [function(x) for x in xs]

    def value(x: float) -> float:
        if x <= xs[0]:
            return ys[0]
        i = bisect.bisect_left(xs, x)
        if i >= len(xs):
            return ys[-1]
        x0, x1 = xs[i - 1], xs[i]
        return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - x0) / (x1 - x0)

    return value


def _weighted_median(pairs: list[tuple[float, float]]) -> float:
    """Median of values given as (weight, value)."""
    if not pairs:
        return 0.0
    pairs.sort(key=lambda pair: pair[1])
    half = sum(weight for weight, _ in pairs) / 2
    running = 0.0
    for weight, value in pairs:
        running += weight
        if running >= half:
            return value
    return pairs[-1][1]


class _Buckets:
    """Stream events counted in one-second buckets from the start."""

    def __init__(self) -> None:
        self.counts: dict[int, float] = {}

    def add(self, start: float, end: float, events: float) -> None:
        if events <= 0:
            return
        if end - start < EPSILON:
            key = int(end)
            self.counts[key] = self.counts.get(key, 0.0) + events
            return
        rate = events / (end - start)
        second = int(start)
        while second < end:
            low, high = max(start, second), min(end, second + 1)
            self.counts[second] = self.counts.get(second, 0.0) + rate * (high - low)
            second += 1

    def peak(self) -> float:
        return max(self.counts.values(), default=0.0)


class _Run:
    """The state of one burst as the engine steps through it."""

    def __init__(
        self, count: int, lengths: list[tuple[float, float]], chunk: float, per_step: float
    ) -> None:
        self.count = count
        self.lengths = lengths
        self.chunk = chunk  # stream events per request and decode step
        self.per_step = per_step  # output tokens per request and decode step
        self.now = 0.0
        self.steps_done = 0
        self.started = self.running = self.largest = self.produced = 0.0
        self.progress = 0.0  # prompt tokens prefilled towards the next requests
        # Finishing steps are rounded up to a fiftieth of a mean output: requests that start
        # within one such stretch finish together (a few hundred events per burst).
        mean = sum(share * tokens for share, tokens in lengths)
        self.granularity = max(1, round(mean / per_step / 50))
        # (decode step at which they finish, order, requests, first-token time, output tokens)
        self.finishing: list[tuple[int, int, float, float, float]] = []
        # The cohort starting in the current stretch: [stretch, requests, sum of first tokens].
        self.cohort: list[float] = [-1, 0.0, 0.0]
        self.order = 0
        self.ttfts: list[tuple[float, float]] = []
        self.tpots: list[tuple[float, float]] = []
        self.buckets = _Buckets()

    @property
    def left(self) -> float:
        """Requests not yet started."""
        return self.count - self.started

    @property
    def done(self) -> bool:
        return self.left <= EPSILON and not self.finishing and self.cohort[1] <= 0

    def prefilled(self, tokens: float, prompt: float) -> None:
        """Prompt tokens done; whole prompts (or the burst's last fraction) start decoding."""
        self.progress += tokens
        ready = self.progress / max(prompt, 1.0)
        if ready >= min(1.0, self.left) - EPSILON:
            self.progress = 0.0
            self.start(ready)

    def start(self, requests: float) -> None:
        """Requests got their first token now and join the current stretch's cohort."""
        self.started += requests
        self.running += requests
        self.largest = max(self.largest, self.running)
        self.ttfts.append((requests, self.now))
        self.buckets.add(self.now, self.now, requests)
        stretch = self.steps_done // self.granularity
        if self.cohort[0] != stretch:
            self.close()
            self.cohort[0] = stretch
        self.cohort[1] += requests
        self.cohort[2] += requests * self.now

    def close(self) -> None:
        """The current cohort's length classes are scheduled to finish."""
        stretch, requests, first_sum = self.cohort
        self.cohort[:] = [-1, 0.0, 0.0]
        if requests <= 0:
            return
        first = first_sum / requests
        for share, tokens in self.lengths:
            steps = max(1, math.ceil((tokens - 1) / self.per_step))
            at = (int(stretch) + math.ceil(steps / self.granularity)) * self.granularity
            heapq.heappush(self.finishing, (at, self.order, requests * share, first, tokens))
            self.order += 1

    def decode(self, steps: int, seconds: float, extra_s: float = 0.0) -> None:
        """`steps` decode steps of `seconds` each (plus `extra_s` of prompt chunks)."""
        begin = self.now
        self.now += steps * seconds + extra_s
        self.produced += steps * self.running * self.per_step
        self.buckets.add(begin, self.now, steps * self.running * self.chunk)
        self.steps_done += steps
        if self.cohort[1] > 0 and self.cohort[0] != self.steps_done // self.granularity:
            self.close()
        while self.finishing and self.finishing[0][0] <= self.steps_done:
            _, _, requests, first, tokens = heapq.heappop(self.finishing)
            self.running = max(0.0, self.running - requests)
            if tokens > 1:
                self.tpots.append((requests, (self.now - first) / (tokens - 1)))

    def steps_to_next_finish(self) -> int:
        if self.finishing:
            return max(1, self.finishing[0][0] - self.steps_done)
        return self.granularity


def simulate(
    inst: Instance,
    *,
    count: int,
    isl: float,
    osl: float,
    varied: bool,
    cap: int,
    eff: Efficiency,
) -> BurstResult:
    """Run a burst of `count` requests on one instance that runs at most `cap` at once."""
    # One admission stream, even where vLLM starts an API server per DP rank: GPUStack's
    # DeepSeek-V3.2 bursts on vLLM 0.13 took a median TTFT of 10.2 s with DP8 (eight servers)
    # and 12.8 s with TP8 (one), not an eighth of it.
    admit_every = max(frontend_seconds(eff, inst.engine), EPSILON)
    prefill_first = inst.engine == "sglang"
    # Each DP rank (or SGLang attention-DP group) schedules its own prompts with its own budget
    # (SGLang's groups share its chunk out: Instance.prefill_budget_per_pool).
    budget = float(inst.prefill_budget_per_pool or max(isl, 8192.0)) * inst.kv_pools
    per_token = prefill_share_seconds(inst, isl, eff) / max(isl, 1.0)
    step = step_table(inst, isl + osl / 2, float(min(cap, count)), eff)
    prefill = _table(
        lambda tokens: prefill_batch_seconds(inst, tokens, isl, eff), _doubling(1.0, budget)
    )
    width = 1 + inst.speculative_tokens
    chunk = 1.0 / max(inst.stream_interval, 1)
    run = _Run(count, output_lengths(osl, varied, count), chunk, tokens_per_step(inst))

    for _ in range(MAX_ITERATIONS):
        if run.done:
            break
        if run.left <= EPSILON and not run.finishing:
            run.close()
        arrived = min(float(count), math.floor(run.now / admit_every + EPSILON))
        waiting = arrived - run.started
        room = cap - run.running
        whole = min(1.0, run.left) - EPSILON
        if waiting > EPSILON and waiting >= whole and room >= whole:
            wanted = min(waiting, room) * isl - run.progress
            if prefill_first or run.running < 0.5:
                # A prefill batch of its own (SGLang; any engine with nothing running).
                tokens = min(wanted, budget)
                run.now += prefill(tokens)
                run.prefilled(tokens, isl)
                continue
            if budget - run.running * width >= 1.0:
                # vLLM: the prompts' chunks fill what the decode tokens leave of the budget.
                tokens = min(wanted, budget - run.running * width)
                run.decode(1, step(run.running), tokens * per_token)
                run.prefilled(tokens, isl)
                continue
        if run.running > EPSILON:
            seconds = step(run.running)
            steps = run.steps_to_next_finish()
            if arrived < count and room >= 1.0:
                # Decode until the next request arrives.
                next_arrival = (arrived + 1) * admit_every
                steps = min(steps, max(1, math.ceil((next_arrival - run.now) / seconds)))
            run.decode(steps, seconds)
            continue
        # Nothing runs: wait for the next request.
        run.now = max(run.now, (arrived + 1) * admit_every)
    else:
        # Bounded: the tokens left are produced at the pace of those produced so far.
        tokens_left = run.left * osl + run.running * osl / 2
        if run.produced > 0:
            run.now += tokens_left / (run.produced / run.now)
        else:
            full = max(1.0, float(min(cap, count)))
            run.now += tokens_left / run.per_step / full * step(full)

    return BurstResult(
        ttft_s=_weighted_median(run.ttfts),
        tpot_s=_weighted_median(run.tpots),
        duration_s=max(run.now, EPSILON),
        peak_events_per_s=run.buckets.peak(),
        largest_batch=run.largest,
    )
