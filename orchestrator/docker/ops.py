"""Small Docker helpers shared by the supervisor, `status` and `logs`: error translation,
finding containers by label, images, log tails, start times."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestrator.errors import DockerUnavailableError, RuntimeFailure

if TYPE_CHECKING:
    from orchestrator.docker.endpoints import Endpoints


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
    pool: Endpoints, endpoints: Iterable[str], label: str, pinned: Iterable[str] = ()
) -> tuple[list[tuple[str, Any]], dict[str, DockerUnavailableError]]:
    """(endpoint, container) for every container carrying `label` (`KEY` or `KEY=VALUE`) on
    each endpoint that answers, and why each other endpoint did not; callers decide which
    endpoints they can do without. `pinned` endpoints (recorded at `up`) are used as written,
    never re-resolved from today's DOCKER_HOST or context."""
    found: list[tuple[str, Any]] = []
    errors: dict[str, DockerUnavailableError] = {}
    fixed = set(pinned)
    for endpoint in sorted(set(endpoints) | fixed):
        try:
            client = pool.client(endpoint, pinned=endpoint in fixed)
        except DockerUnavailableError as error:
            errors[endpoint] = error
            continue
        containers = client.containers.list(all=True, ignore_removed=True, filters={"label": label})
        found += [(endpoint, container) for container in containers]
    return found, errors


def has_image(client: Any, image: str) -> bool:
    import docker.errors

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def image_source(
    pool: Endpoints, image: str, target: str, candidates: Iterable[str]
) -> tuple[str, Any] | None:
    """The first endpoint among `candidates` (not `target`) that answers and has `image`."""
    from orchestrator.errors import DeployError

    for endpoint in dict.fromkeys(candidates):
        if endpoint == target:
            continue
        with contextlib.suppress(DeployError):
            client = pool.client(endpoint)
            if has_image(client, image):
                return endpoint, client
    return None


def copy_image(source: Any, target: Any, image: str) -> None:
    """`docker save IMAGE | docker -H TARGET load`, streamed between the two endpoints (over
    ssh:// too), without a temporary file."""
    chunks = source.images.get(image).save(named=True)
    target.images.load(chunks)


def ensure_image(
    client: Any,
    image: str,
    node: str,
    note: Callable[[str], None],
    copy_from: tuple[str, Any] | None = None,
) -> None:
    """Make `image` present on a node: copy it from `copy_from` (an endpoint that has it) when
    given, else pull it; one line naming the image and node if neither works."""
    if has_image(client, image):
        return
    if copy_from is not None:
        where, source = copy_from
        note(f"copying {image} from {where} to {node} ...")
        try:
            copy_image(source, client, image)
        except Exception as error:
            reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
            raise RuntimeFailure(
                f"could not copy {image} from {where} to node {node} ({reason})",
                "check the disk space on that node, or load the image there by hand",
            ) from error
        return
    if image.startswith("deploy-sim"):
        # The simulator image is built locally, never pulled: no registry has it.
        raise RuntimeFailure(
            f"the simulator image {image} is not on node {node}",
            "build it with `deploy sim image` (offline); `deploy up --copy-images` copies it "
            "to the other nodes",
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
