"""What a benchmark may ask for: bounded load, lengths within the model's context, URLs without
credentials in anything printed, proxies for remote servers, and failed levels told apart.

- Concurrency: every request in flight holds one socket. Levels are bounded by a stated
  maximum and by the process's open-file limit (raised to the hard limit when that suffices).
- Lengths: the prompt and the output must fit the served model's context, as `/v1/models`
  reports it (`max_model_len`, sent by vLLM and SGLang); a stated maximum applies always.
- URLs: `user:password@` in `--url` is used for HTTP basic auth and removed from the URL that
  is printed and written (table, result.json, report.html).
- Proxies: HTTP(S)_PROXY / NO_PROXY are honoured for non-loopback servers (`--no-proxy` turns
  that off); a loopback server is always reached directly.
- Failures: a level where most requests failed measured the failure, not the server or the
  client. It is an error, never "client-bound".
"""

from __future__ import annotations

import ipaddress
import resource
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from orchestrator.errors import BenchError, RuntimeFailure

MAX_CONCURRENCY = 4096
# Sockets and files the client needs besides one connection per request in flight.
RESERVED_FILES = 64
MAX_TOKENS = 10_000_000  # prompt or output tokens, whatever the model
# A level is failed when more than this share of its requests failed.
FAILED_SHARE = 0.5


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str = ""

    def __repr__(self) -> str:
        return "Credentials(<hidden>)"


def split_credentials(url: str) -> tuple[str, Credentials | None]:
    """(the URL without `user:password@`, the credentials or None)."""
    parts = urlsplit(url.strip())
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port is not None else "")
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, Credentials(unquote(parts.username or ""), unquote(parts.password or ""))


def redact(text: str) -> str:
    """Any `scheme://user:password@` in `text`, with the credentials removed (for errors)."""
    import re

    return re.sub(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@", r"\1", text)


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def use_proxy(url: str, no_proxy: bool) -> bool:
    """Whether the environment's proxy settings apply to requests to `url`."""
    return not no_proxy and not is_loopback_url(url)


def check_concurrency(levels: Sequence[int]) -> None:
    """Refuse levels above MAX_CONCURRENCY or above what the open-file limit allows."""
    if not levels:
        return
    top = max(levels)
    if top > MAX_CONCURRENCY:
        raise BenchError(
            f"--concurrency {top} is above the maximum of {MAX_CONCURRENCY} requests in flight",
            "a single client cannot drive more; run several benches from different machines",
        )
    ensure_open_files(top + RESERVED_FILES, f"--concurrency {top}")


def connection_cap() -> int:
    """Connections for an uncapped open-loop sweep: what the open-file limit allows."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    budget = soft - RESERVED_FILES if soft != resource.RLIM_INFINITY else MAX_CONCURRENCY
    return max(1, min(MAX_CONCURRENCY, budget))


def ensure_open_files(needed: int, what: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard == resource.RLIM_INFINITY or hard >= needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
            return
        except (ValueError, OSError):
            pass
    raise BenchError(
        f"{what} needs about {needed} open files but this process may open {soft} "
        f"(hard limit {hard})",
        "raise the limit (ulimit -n) or lower --concurrency",
    )


def check_lengths(input_len: int | None, output_len: int | None) -> None:
    for name, value in (("--input-len", input_len), ("--output-len", output_len)):
        if value is not None and value > MAX_TOKENS:
            raise BenchError(
                f"{name} {value} is above the maximum of {MAX_TOKENS:,} tokens",
                "no served model has a context that long",
            )


def served_context(listing: Any, model: str) -> int | None:
    """`max_model_len` of `model` in a `/v1/models` answer, when the server reports it."""
    models = listing.get("data") if isinstance(listing, dict) else None
    for entry in models if isinstance(models, list) else []:
        if isinstance(entry, dict) and entry.get("id") == model:
            value = entry.get("max_model_len")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def check_fits_context(
    model: str, context: int | None, input_len: int, output_len: int, synthetic: bool
) -> None:
    if context is None:
        return
    if synthetic and input_len + output_len > context:
        raise BenchError(
            f"--input-len {input_len} + --output-len {output_len} is more than {model}'s "
            f"context of {context} tokens (max_model_len from /v1/models)",
            f"keep the sum at or below {context}",
        )
    if output_len >= context:
        raise BenchError(
            f"--output-len {output_len} is not below {model}'s context of {context} tokens",
            f"use at most {context - 1}",
        )


@dataclass(frozen=True, slots=True)
class LevelFailure:
    load: float
    failed: int
    counted: int
    first_error: str

    def line(self) -> str:
        return (
            f"level {self.load:g}: {self.failed} of {self.counted} requests failed; "
            f"first error: {self.first_error}"
        )


def level_failure(load: float, records: Sequence[Any]) -> LevelFailure | None:
    """The failure of a level where most requests failed (warm-up included when nothing was
    counted), with the first error in the order the requests started; None otherwise."""
    counted = [r for r in records if r.in_window] or list(records)
    failed = [r for r in counted if r.error_kind is not None]
    if not counted or len(failed) <= FAILED_SHARE * len(counted):
        return None
    first = min(failed, key=lambda r: r.start)
    return LevelFailure(load, len(failed), len(counted), redact(first.error or first.error_kind))


class BenchFailed(RuntimeFailure):
    """Some levels failed; `output` is the table (or JSON) of what was measured."""

    def __init__(self, failures: Sequence[LevelFailure], output: str) -> None:
        first = failures[0]
        more = f" (and {len(failures) - 1} more failed levels)" if len(failures) > 1 else ""
        super().__init__(
            first.line() + more,
            "the server failed, not the client: check it (deploy status, deploy logs) and "
            "run again",
        )
        self.output = output
