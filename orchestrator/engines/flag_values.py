"""Values of engine flags checked against what the engine's own converter accepts.

The flag schemas record, for each numeric option, the kind its argparse converter takes
(probed from the real parser by `scripts/flagschema/dump.py`) and the few words it also takes
("auto", "None"). A value the converter would refuse is refused at render time, so a typo
fails in one line instead of at container start, restart after restart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from orchestrator.errors import FlagError

# vLLM's `human_readable_int`: an integer, or a decimal with a k/m/g/t (x1000) or an integer
# with a K/M/G/T (x1024) suffix, e.g. 32k, 25.6k, 1M.
_HUMAN_INT = re.compile(r"^(?:[+-]?\d+|\d+(?:\.\d+)?[kmgt]|\d+[KMGT])$")
_EXAMPLES = {"int": "an integer, e.g. 8", "float": "a number, e.g. 0.9"}
_EXAMPLES["human_int"] = "an integer, e.g. 32768 or 32k"


def value_accepted(kind: str, value: str, words: Sequence[str] = ()) -> bool:
    text = value.strip()
    if value in words:
        return True
    if kind == "human_int":
        return _HUMAN_INT.match(text) is not None
    try:
        if kind == "int":
            int(text)
        elif kind == "float":
            # nan and inf parse, and pass every range check the engine makes the wrong way.
            return math.isfinite(float(text))
    except ValueError:
        return False
    return True


def check_value_kind(
    kind: str, spelling: str, value: str, who: str, words: Sequence[str] = ()
) -> None:
    """Raise FlagError naming the flag and what it accepts when `value` is not of `kind`."""
    if kind not in _EXAMPLES or value_accepted(kind, value, words):
        return
    also = [repr(word) for word in words if word]
    accepted = _EXAMPLES[kind] + (f", or {', '.join(also)}" if also else "")
    raise FlagError(f"{spelling} {value} is not accepted by {who}", f"it takes {accepted}")
