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


LIMITS_ATTRIBUTE = "deploy_limits"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _check(value: Any, low: float | None, high: float | None) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    if high is not None and value > high:
        raise click.BadParameter(f"{value} is over the limit of {_number(high)}")
    if low is not None and value < low:
        raise click.BadParameter(f"{value} is under the limit of {_number(low)}")


def _bounded(callback: Any, low: float | None, high: float | None) -> Any:
    """The option's callback, after the limits are checked on the converted value(s)."""

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        for item in value if isinstance(value, (tuple, list)) else [value]:
            if item is not None:
                _check(item, low, high)
        return callback(ctx, param, value) if callback is not None else value

    return check


def is_numeric(kind: click.ParamType[Any]) -> bool:
    return isinstance(kind, (click.types.IntParamType, click.types.FloatParamType))


def harden(command: click.Command) -> click.Command:
    """Bound every numeric option of `command` (and of its subcommands); idempotent. The
    option keeps its type (help, metavar and click's own range messages stay as they are);
    the limits are checked on the converted value, before the option's own callback."""
    for param in command.params:
        if is_numeric(param.type) and not hasattr(param, LIMITS_ATTRIBUTE):
            low, high = OPTION_LIMITS.get(param.name or "", GENERIC)
            param.callback = _bounded(param.callback, low, high)
            setattr(param, LIMITS_ATTRIBUTE, (low, high))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            harden(sub)
    return command
