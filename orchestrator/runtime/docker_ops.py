"""Small Docker helpers shared by the supervisor, `status` and `logs`: error translation,
finding containers by label, images, log tails, start times."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DockerUnavailableError, RuntimeFailure

if TYPE_CHECKING:
    from orchestrator.runtime.endpoints import Endpoints


@contextlib.contextmanager
def docker_errors_as_failures(name: str, command: str = "deploy up") -> Iterator[None]:
    """A Docker API or connection error in the middle of a run becomes one line, not a trace;
    the hint names the `command` to run again."""
    import docker.errors
    import requests

    try:
        yield
    except docker.errors.APIError as error:
        text = error.explanation or str(error)
        raise RuntimeFailure(
            f"Docker refused an operation for {name}: {str(text).splitlines()[0][:200]}",
            f"check the daemon's log, then run `{command}` again",
        ) from error
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        raise RuntimeFailure(
            f"lost the Docker daemon while running {name}: {str(error).splitlines()[0][:200]}",
            f"check that dockerd is running, then run `{command}` again",
        ) from error


def labelled_containers(
    pool: Endpoints, endpoints: Iterable[str], label: str
) -> tuple[list[tuple[str, Any]], dict[str, DockerUnavailableError]]:
    """(endpoint, container) for every container carrying `label` (`KEY` or `KEY=VALUE`) on
    each endpoint that answers, and why each other endpoint did not; callers decide which
    endpoints they can do without."""
    found: list[tuple[str, Any]] = []
    errors: dict[str, DockerUnavailableError] = {}
    for endpoint in sorted(set(endpoints)):
        try:
            client = pool.client(endpoint)
        except DockerUnavailableError as error:
            errors[endpoint] = error
            continue
        containers = client.containers.list(all=True, ignore_removed=True, filters={"label": label})
        found += [(endpoint, container) for container in containers]
    return found, errors


def ensure_image(client: Any, image: str, node: str, note: Callable[[str], None]) -> None:
    """Pull `image` on a node that lacks it; one line naming the image and node if it cannot."""
    import docker.errors

    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    if image.startswith("deploy-sim"):
        # The simulator image is built locally, never pulled: no registry has it.
        raise RuntimeFailure(
            f"the simulator image {image} is not on node {node}",
            "build it with `deploy sim image` (offline), and `docker save "
            f"{image} | docker -H <node endpoint> load` for each other node",
        )
    note(f"pulling {image} on {node} ...")
    try:
        client.images.pull(image)
    except Exception as error:
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise RuntimeFailure(
            f"image {image} is not on node {node} and cannot be pulled ({reason})",
            "pull or load it on that node (docker pull / docker load)",
        ) from error


def log_tail(container: Any, lines: int, secrets: Iterable[str] = ()) -> list[str]:
    """The last non-blank log lines, with each value in `secrets` masked: engines echo their
    arguments at start (vLLM logs `api_key`), and these lines end up in errors and CI logs."""
    try:
        raw = container.logs(stdout=True, stderr=True, tail=lines)
    except Exception:  # the container may already be gone
        return []
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    # Longest first, so a secret that contains another is masked whole; values under four
    # characters are left, as masking them would garble every line.
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
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
