"""What a serving command line sets that the speed and memory models read: speculative draft
tokens, eager mode, the stream interval, SGLang's CUDA-graph cap and the step's token budget.

Read from a published run's command (calibration cases), from `--engine-arg` flags (a plan), and
from a plan's rendered arguments (`deploy bench`), in one place so that the three agree.
"""

from __future__ import annotations

import re

# The flags that set the prompt tokens per engine step (vLLM, SGLang).
BATCHED_TOKEN_FLAGS = ("--max-num-batched-tokens", "--chunked-prefill-size")


def flag_value(command: str, *names: str) -> str | None:
    """The value after the first of `names` the command sets (`--name value` or `--name=value`)."""
    for name in names:
        found = re.search(re.escape(name) + r"[= ]+(\S+)", command)
        if found:
            return found.group(1)
    return None


def positive_int(value: str | None, default: int = 1) -> int:
    return int(value) if value and value.isdigit() and int(value) > 0 else default


def speculative_tokens(command: str) -> int:
    """Draft tokens per step when the command enables speculative decoding (EAGLE, MTP)."""
    value = flag_value(command, "--speculative-num-draft-tokens", "--num-speculative-tokens")
    if value and value.isdigit():
        return int(value)
    # vLLM: --speculative-config '{"method": "mtp", "num_speculative_tokens": 3}'
    found = re.search(r'num_speculative_tokens"?\s*[:=]\s*(\d+)', command)
    if found:
        return int(found.group(1))
    if any(flag in command for flag in ("--speculative-algorithm", "--speculative-config", "-sc ")):
        return 4  # the engines' usual draft length when the command leaves it implicit
    return 0


def eager_mode(command: str) -> bool:
    """The command turns CUDA graphs off (vLLM --enforce-eager, SGLang --disable-cuda-graph;
    not SGLang's --disable-cuda-graph-padding, which keeps the graphs)."""
    return (
        re.search(r"(?:^|\s)(?:--enforce-eager|--disable-cuda-graph)(?:[=\s]|$)", command)
        is not None
    )


def stream_interval(command: str) -> int:
    """Decode steps per streamed chunk (SGLang's --stream-interval); 1 when the command is
    silent."""
    return positive_int(flag_value(command, "--stream-interval"))


def cuda_graph_max_bs(command: str) -> int | None:
    """The largest decode CUDA-graph batch the command sets (SGLang's --cuda-graph-max-bs,
    --cuda-graph-max-bs-decode in the releases that split it by phase)."""
    flag = flag_value(command, "--cuda-graph-max-bs-decode", "--cuda-graph-max-bs")
    return positive_int(flag, 0) or None


def batched_tokens(command: str) -> int | None:
    """The prompt tokens per engine step the command sets (vLLM --max-num-batched-tokens, SGLang
    --chunked-prefill-size); None when it leaves the engine's default."""
    return positive_int(flag_value(command, *BATCHED_TOKEN_FLAGS), 0) or None
