"""Bounds on what users type: names and paths checked before any file system call sees them.

The OS answers an over-long path with `OSError: File name too long` from deep inside a lookup;
these checks say the same thing in one line, naming the limit.
"""

from __future__ import annotations

from orchestrator.errors import InputError

# Linux: NAME_MAX bytes per path component, PATH_MAX bytes per path (with its NUL).
NAME_MAX = 255
PATH_MAX = 4095


def validate_model_reference(model: str) -> str:
    """A catalog alias, a Hugging Face id or a local directory, within the OS's limits."""
    shown = model if len(model) <= 60 else model[:60] + "..."
    if not model.strip():
        raise InputError("the model is empty", "pass a catalog alias, a Hugging Face id or a path")
    if "\x00" in model:
        raise InputError(f"the model {shown!r} contains a NUL character", "check the argument")
    size = len(model.encode("utf-8", "surrogateescape"))
    if size > PATH_MAX:
        raise InputError(
            f"the model {shown!r} is {size} bytes long, over the {PATH_MAX}-byte path limit",
            "pass a catalog alias, a Hugging Face id or a shorter path",
        )
    for part in model.split("/"):
        length = len(part.encode("utf-8", "surrogateescape"))
        if length > NAME_MAX:
            raise InputError(
                f"the model {shown!r} has a name part of {length} bytes, over the "
                f"{NAME_MAX}-byte limit of file names",
                "pass a catalog alias, a Hugging Face id or a path with shorter names",
            )
    return model


# Hardware a plan may describe. Planning time grows with the node count (a 256-node plan of
# a 671B MoE takes seconds; 4096 nodes take half a minute and half a GiB), and no node holds
# more than 64 GPUs (HGX boards hold 8 or 16).
MAX_NODES = 256
MAX_GPUS_PER_NODE = 64


def check_node_count(nodes: int, source: str = "--nodes") -> int:
    """Refuse a node count no plan can use before anything is built from it."""
    if nodes > MAX_NODES:
        raise InputError(
            f"{source} asks for {nodes} nodes, over the limit of {MAX_NODES}",
            f"use at most {MAX_NODES} nodes per deployment",
        )
    return nodes


def check_gpus_per_node(count: int, source: str = "--gpus") -> int:
    if count > MAX_GPUS_PER_NODE:
        raise InputError(
            f"{source} asks for {count} GPUs per node, over the limit of {MAX_GPUS_PER_NODE}",
            f"use at most {MAX_GPUS_PER_NODE}, e.g. 8xH100 with --nodes N",
        )
    return count


def check_finite(value: float | None, option: str) -> float | None:
    """NaN and infinity pass every `<`/`>` check the wrong way; refuse them by name."""
    import math

    if value is not None and not math.isfinite(value):
        raise InputError(f"{option} {value} is not a finite number", f"give {option} a number")
    return value
