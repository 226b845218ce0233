"""The benchmark's settings, parsed and checked before any request is sent."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from orchestrator.bench.bounds import Credentials, redact
from orchestrator.bench.metrics import Slo
from orchestrator.bench.recommend import Rule
from orchestrator.bench.selfcheck import Limits
from orchestrator.errors import BenchError

DEFAULT_CONCURRENCY = "1,2,4,8,16,32,64"
T = TypeVar("T", int, float)


@dataclass(frozen=True)
class BenchOptions:
    base_url: str
    model: str | None = None
    endpoint: str = "completions"  # or "chat"
    concurrency: tuple[int, ...] = (1,)
    rates: tuple[float, ...] = ()  # non-empty: an open-loop sweep over rates
    input_len: int = 1024
    output_len: int = 128
    dataset: Path | None = None
    requests: int | None = None  # per level; None with duration None: the default below
    duration: float | None = None
    warmup: int | None = None  # requests; None: one per concurrency slot
    drain_timeout: float = 60.0
    request_timeout: float = 600.0
    ignore_eos: bool = True
    api_key: str | None = field(default=None, repr=False)  # never printed with the options
    credentials: Credentials | None = field(default=None, repr=False)  # from user:pass@ in --url
    no_proxy: bool = False  # ignore HTTP(S)_PROXY even for remote servers
    slo: Slo = field(default_factory=Slo)
    rule: Rule = field(default_factory=Rule)
    limits: Limits = field(default_factory=Limits)
    seed: int = 0
    event_loop: str = "asyncio"  # or "uvloop" (optional package; about 20% less client CPU)

    @property
    def sweep(self) -> str:
        return "rate" if self.rates else "concurrency"

    @property
    def loads(self) -> tuple[float, ...]:
        return self.rates if self.rates else tuple(float(c) for c in self.concurrency)

    def requests_for(self, load: float) -> int | None:
        """Default window: ten requests per slot (or per second of rate), at least 50."""
        if self.requests is not None or self.duration is not None:
            return self.requests
        return max(50, math.ceil(10 * load)) if not math.isinf(load) else 50


def parse_levels(text: str, option: str) -> tuple[int, ...]:
    """`1,2,4` -> (1, 2, 4): positive integers, at least one, no repeats."""
    values = []
    for part in _parts(text, option):
        try:
            value = int(part)
        except ValueError:
            raise BenchError(
                f"{option} level {part!r} is not a whole number", f"use e.g. {option} 1,2,4,8"
            ) from None
        if value < 1:
            raise BenchError(f"{option} level {value} must be at least 1")
        values.append(value)
    return _unique(values, option)


def parse_rates(text: str) -> tuple[float, ...]:
    """`1,2.5,inf` -> requests per second."""
    values = []
    for part in _parts(text, "--rate"):
        try:
            value = float(part)
        except ValueError:
            raise BenchError(
                f"--rate level {part!r} is not a number", "use e.g. --rate 1,2,5,inf"
            ) from None
        if math.isnan(value) or value <= 0:
            raise BenchError(f"--rate level {part!r} must be above 0")
        values.append(value)
    return _unique(values, "--rate")


def _parts(text: str, option: str) -> list[str]:
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise BenchError(f"{option} needs a comma-separated list of levels", f"e.g. {option} 1,2,4")
    return parts


def _unique(values: list[T], option: str) -> tuple[T, ...]:
    if len(set(values)) != len(values):
        raise BenchError(f"{option} repeats a level", "list each level once")
    return tuple(sorted(values))


def parse_slo(text: str | None) -> Slo:
    """`ttft=500,tpot=50,e2el=20000` (milliseconds) -> Slo."""
    if not text:
        return Slo()
    limits: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in ("ttft", "tpot", "e2el"):
            raise BenchError(
                f"--slo part {part.strip()!r} is not NAME=MS", "use e.g. --slo ttft=500,tpot=50"
            )
        try:
            number = float(value)
        except ValueError:
            raise BenchError(f"--slo {name} value {value!r} is not a number of ms") from None
        if not (number > 0 and math.isfinite(number)):
            raise BenchError(f"--slo {name} must be a finite number above 0 ms")
        limits[name] = number
    return Slo(limits.get("ttft"), limits.get("tpot"), limits.get("e2el"))


def normalise_url(url: str) -> str:
    """Base URL without a trailing `/v1` or slash; must be http(s)."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise BenchError(f"URL {redact(url)!r} must start with http:// or https://")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url
