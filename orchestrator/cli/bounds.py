"""Every numeric option of every command, bounded and finite.

click's INT and FLOAT take any magnitude, and FLOAT takes `nan` and `inf`, which pass every
`<`/`>` check the wrong way (`nan > 0` and `nan <= 0` are both False). Each command is hardened
once, when `deploy` imports it: its numeric options get the limits of `OPTION_LIMITS` (by
parameter name), and any numeric option not listed there the generic limit, so an option added
later is bounded too. Lower limits stay with the commands, whose messages say more.
"""

from __future__ import annotations

import math
from typing import Any

import click

DAY_S = 86_400.0
TOKENS = 2**24  # prompt, output or context tokens: 16M, past any model's context
COUNT = 10_000_000  # requests, lines, restarts

# parameter name -> (lowest, highest) accepted; None: no bound on that side here.
OPTION_LIMITS: dict[str, tuple[float | None, float | None]] = {
    # planning (the node and GPU counts are checked again where hardware is resolved)
    "nodes": (None, 256),
    "tp": (None, 4096),
    "pp": (None, 4096),
    "dp": (None, 4096),
    "ep": (None, 4096),
    "attn_dp": (None, 4096),
    "max_gpus": (None, 16_384),
    "prefill_gpus": (None, 16_384),
    "decode_gpus": (None, 16_384),
    "context": (None, TOKENS),
    "isl": (None, TOKENS),
    "osl": (None, TOKENS),
    "concurrency": (None, 1_000_000),
    "request_rate": (None, 1_000_000),
    "gpu_memory_utilization": (None, 1.0),
    "download_rate": (0, 10_000),  # GiB/s
    # up / logs
    "timeout": (None, 7 * DAY_S),
    "restart_window": (None, 30 * DAY_S),
    "max_restarts": (0, 100),
    "tail": (None, COUNT),
    # bench (--input-len and --output-len: the generic limit; bench states its own below it)
    "requests": (None, COUNT),
    "duration": (None, 7 * DAY_S),
    "warmup": (None, COUNT),
    "drain_timeout": (None, 7 * DAY_S),
    "min_gain": (-1000, 1000),  # percent
    "max_latency_growth": (-1000, 1000),
    "max_loop_lag_ms": (None, 3_600_000),
    "max_client_cpu": (None, 100_000),
    "seed": (-(2**63), 2**63 - 1),
    # sim
    "port": (0, 65535),
    "load_seconds": (None, DAY_S),
    "warmup_seconds": (None, DAY_S),
    "ttft_ms": (None, 3_600_000),
    "tpot_ms": (None, 3_600_000),
    "max_concurrency": (None, 1_000_000),
}
# Any other numeric option.
GENERIC: tuple[float | None, float | None] = (-(2**31), 2**31 - 1)


class Bounded(click.ParamType[Any]):
    """The wrapped type's conversion, then finiteness and the option's limits."""

    def __init__(self, inner: click.ParamType[Any], low: float | None, high: float | None) -> None:
        self.inner = inner
        self.low = low
        self.high = high
        self.name = inner.name

    def get_metavar(self, param: click.Parameter, *args: Any) -> str | None:
        return self.inner.get_metavar(param, *args)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and len(value) > 64:
            self.fail(f"{value[:20]}... is {len(value)} characters long, not a number", param, ctx)
        converted = self.inner.convert(value, param, ctx)
        if isinstance(converted, float) and not math.isfinite(converted):
            self.fail(f"{value} is not a finite number", param, ctx)
        if self.high is not None and converted > self.high:
            self.fail(f"{value} is over the limit of {_number(self.high)}", param, ctx)
        if self.low is not None and converted < self.low:
            self.fail(f"{value} is under the limit of {_number(self.low)}", param, ctx)
        return converted

    def __repr__(self) -> str:
        return f"Bounded({self.inner!r}, {self.low}, {self.high})"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def is_numeric(kind: click.ParamType[Any]) -> bool:
    return isinstance(kind, (click.types.IntParamType, click.types.FloatParamType))


def harden(command: click.Command) -> click.Command:
    """Bound every numeric option of `command` (and of its subcommands); idempotent."""
    for param in command.params:
        if is_numeric(param.type):
            low, high = OPTION_LIMITS.get(param.name or "", GENERIC)
            param.type = Bounded(param.type, low, high)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            harden(sub)
    return command
