"""Small Docker helpers shared by the supervisor and `status`: error translation, log tails,
start times."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from orchestrator.errors import RuntimeFailure


@contextlib.contextmanager
def docker_errors_as_failures(name: str) -> Iterator[None]:
    """A Docker API or connection error in the middle of a run becomes one line, not a trace."""
    import docker.errors
    import requests

    try:
        yield
    except docker.errors.APIError as error:
        text = error.explanation or str(error)
        raise RuntimeFailure(
            f"Docker refused an operation for {name}: {str(text).splitlines()[0][:200]}",
            "check the daemon's log, then run `deploy up` again",
        ) from error
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        raise RuntimeFailure(
            f"lost the Docker daemon while running {name}: {str(error).splitlines()[0][:200]}",
            "check that dockerd is running, then run `deploy up` again",
        ) from error


def log_tail(container: Any, lines: int) -> list[str]:
    try:
        raw = container.logs(stdout=True, stderr=True, tail=lines)
    except Exception:  # the container may already be gone
        return []
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    return [line for line in text.splitlines() if line.strip()][-lines:]


def started_at(container: Any) -> float | None:
    """When the container last started (epoch seconds), from its inspect data."""
    text = container.attrs.get("State", {}).get("StartedAt", "")
    if not text or text.startswith("0001"):
        return None
    head = text.rstrip("Z").split(".")[0]
    try:
        return datetime.fromisoformat(head + "+00:00").timestamp()
    except ValueError:
        return None
