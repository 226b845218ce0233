"""`--slo ttft=2s,tpot=50ms`: the latency targets a layout should meet, in milliseconds."""

from __future__ import annotations

import math

from orchestrator.errors import InputError

UNITS = {"ms": 1.0, "s": 1000.0}
EXAMPLE = "use e.g. --slo ttft=2s,tpot=50ms"


def _duration_ms(text: str, item: str) -> float:
    for unit in ("ms", "s"):
        if text.endswith(unit):
            number = text[: -len(unit)]
            break
    else:
        unit, number = "ms", text
    try:
        value = float(number) * UNITS[unit]
    except ValueError:
        raise InputError(f"--slo {item!r} is not a duration", EXAMPLE) from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"--slo {item!r} must be a positive, finite duration", EXAMPLE)
    return value


def parse_slo(text: str | None) -> tuple[float | None, float | None]:
    """(TTFT ms, TPOT ms) from 'ttft=2s,tpot=50ms'; either may be left out."""
    if not text:
        return None, None
    found: dict[str, float] = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        key = key.strip().lower()
        if not sep or key not in ("ttft", "tpot"):
            raise InputError(
                f"--slo {item.strip()!r}: expected ttft=DURATION or tpot=DURATION", EXAMPLE
            )
        found[key] = _duration_ms(value.strip().lower(), item.strip())
    return found.get("ttft"), found.get("tpot")
