"""Secrets fail closed: the variable named by `--api-key-env` must be a valid name and be set.

An endpoint the user asked to protect must never start open. One check serves `render` and
`up`: a named variable that is unset or empty refuses them (exit 2) unless the user says
`--allow-missing-secret VAR` (rendering on one machine for another, where the key lives).
`HF_TOKEN` is passed through when present but is optional: public models need none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from orchestrator.errors import InputError

if TYPE_CHECKING:
    from orchestrator.plan import Plan

# POSIX shell and compose both accept exactly these names for interpolation.
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_VARIABLE_LENGTH = 128


def validate_variable_name(name: str, option: str = "--api-key-env") -> str:
    """`name` if it can be referenced as `${NAME}` by compose and the shell; else InputError."""
    if len(name) > MAX_VARIABLE_LENGTH or not _VARIABLE.match(name):
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise InputError(
            f"{option} {shown!r} is not a valid environment variable name",
            f"use letters, digits and '_' (at most {MAX_VARIABLE_LENGTH}, not starting with a "
            "digit), e.g. VLLM_API_KEY",
        )
    return name


def required_secrets(plan: Plan) -> list[str]:
    """Variables the deployment cannot run safely without: the API key, when one was named."""
    return [plan.request.api_key_env] if plan.request.api_key_env else []


def check_secrets(
    plan: Plan, env: Mapping[str, str], allow_missing: Iterable[str] = ()
) -> list[str]:
    """Refuse when a required secret is unset or empty; return the ones allowed to be missing.

    Empty counts as missing: vLLM and SGLang treat an empty `--api-key` as no key at all."""
    allowed = {validate_variable_name(name, "--allow-missing-secret") for name in allow_missing}
    missing = [name for name in required_secrets(plan) if not env.get(name)]
    refused = [name for name in missing if name not in allowed]
    if refused:
        name = refused[0]
        raise InputError(
            f"{name} is not set (or empty): the endpoint would start without an API key",
            f"export {name}=..., or pass --allow-missing-secret {name} to render it anyway",
        )
    return missing


def exposure_warnings(public: bool, api_key_env: str | None) -> list[str]:
    """What `plan` and the dry run say about who can reach the endpoint."""
    if public and not api_key_env:
        return [
            "--public without --api-key-env: the endpoint is published on every interface and "
            "answers anyone who can reach the host; add --api-key-env VAR"
        ]
    return []


def missing_secret_warnings(
    plan: Plan, env: Mapping[str, str], allow_missing: Iterable[str] = ()
) -> list[str]:
    """For the dry run, which touches nothing: what `check_secrets` would refuse, as warnings."""
    try:
        check_secrets(plan, env, allow_missing)
    except InputError as error:
        return [f"{error.message}: `deploy up` will refuse to start"]
    return []
