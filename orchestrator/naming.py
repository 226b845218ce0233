"""Deployment names: derived from the model by default, checked when given.

The one name rule of every command (`plan`, `render`, `up`, `status`, `logs`, `down`, the
state files and the Slurm records): a name one command accepts, every command accepts.

A name becomes container names, compose project names and host labels, so it must be a DNS
label: lowercase letters, digits and '-', at most 63 characters, starting and ending with a
letter or digit.
"""

from __future__ import annotations

import re

from orchestrator.errors import InputError

MAX_LENGTH = 63
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_INVALID = re.compile(r"[^a-z0-9]+")


def default_name(model_alias: str) -> str:
    """'Qwen3-32B' -> 'qwen3-32b'; 'meta-llama/Llama-3.1-8B' -> 'llama-3-1-8b'."""
    base = model_alias.rsplit("/", 1)[-1].lower()
    name = _INVALID.sub("-", base).strip("-")[:MAX_LENGTH].rstrip("-")
    return name or "deployment"


def is_valid_name(name: str) -> bool:
    return _LABEL.match(name) is not None


def check_name(name: str) -> str:
    """Return `name` when it is a valid deployment name, else raise a one-line error."""
    if _LABEL.match(name):
        return name
    suggestion = default_name(name)
    raise InputError(
        f"--name {name!r} is not a DNS label (lowercase letters, digits and '-', at most "
        f"{MAX_LENGTH} characters, no leading or trailing '-')",
        f"try --name {suggestion}",
    )


def deployment_name(model_alias: str, name: str | None) -> str:
    return check_name(name) if name is not None else default_name(model_alias)
