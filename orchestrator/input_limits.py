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
