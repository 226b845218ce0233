"""The Hugging Face cache on each node (room for the checkpoint, or the checkpoint already
there) and, once per run, whether the token opens a gated repository."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping

from orchestrator.doctor.context import NodeContext
from orchestrator.doctor.report import Check, failed, passed, skipped, warned

# Downloads land in a temporary file before they move into place; keep a margin.
_MARGIN = 1.1


def _gib(value: float) -> str:
    return f"{value / 1024**3:.1f} GiB"


def disk_check(context: NodeContext) -> Check:
    node = context.node
    if context.local_model:
        return skipped(node, "disk", "the model is served from a local directory")
    if context.simulate:
        return skipped(node, "disk", "a rehearsal (--simulate) downloads no checkpoint")
    if context.probe is None:
        return skipped(node, "disk", "the probe did not run")
    storage = context.probe.get("storage", {})
    free = storage.get("free_bytes")
    cache = storage.get("hf_cache") or "the HF cache"
    if free is None:
        return warned(
            node, "disk", f"{cache} is not mounted in the container", "check the HF_HOME mount"
        )
    if storage.get("checkpoint_present"):
        return passed(node, "disk", f"checkpoint already in {cache} ({_gib(free)} free)")
    need = context.checkpoint_bytes
    if need is None:
        return passed(node, "disk", f"{_gib(free)} free in {cache}")
    detail = f"{_gib(free)} free in {cache}, the checkpoint needs {_gib(need)}"
    if free < need:
        return failed(
            node,
            "disk",
            detail,
            f"free space on node {node} or point HF_HOME at a larger disk before `deploy up`",
        )
    if free < need * _MARGIN:
        return warned(node, "disk", detail, "leave 10% more than the checkpoint for the download")
    return passed(node, "disk", detail)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect to the file store already means "allowed": do not follow it."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def hub_token_check(
    node: str,
    repo: str | None,
    env: Mapping[str, str],
    *,
    present_everywhere: bool,
    timeout_s: float = 10.0,
) -> Check:
    """Ask the Hub (HF_ENDPOINT) whether this token may read `repo`'s config.json, the first
    file an engine downloads: 200 or a redirect is access; 401/403 is a gated repository
    without access; 404 is an unknown (or private) one."""
    if repo is None:
        return skipped(node, "hub-token", "the model is served from a local directory")
    if present_everywhere:
        return skipped(node, "hub-token", "the checkpoint is already in every node's cache")
    endpoint = (env.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    token = env.get("HF_TOKEN") or None
    request = urllib.request.Request(f"{endpoint}/{repo}/resolve/main/config.json", method="HEAD")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler())
    try:
        with opener.open(request, timeout=timeout_s) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = int(error.code)
    except (OSError, ValueError) as error:  # offline, DNS, TLS: the engine would fail too
        reason = str(getattr(error, "reason", "") or error).splitlines()[0][:120]
        return warned(
            node,
            "hub-token",
            f"the Hub at {endpoint} is not reachable from here ({reason})",
            "pre-download the checkpoint into every node's HF cache, or set HF_ENDPOINT",
        )
    if status < 400:
        return passed(node, "hub-token", f"{repo} readable{' with HF_TOKEN' if token else ''}")
    if status in (401, 403):
        fix = (
            f"accept the license of {repo} on the Hub with the account of HF_TOKEN, or use a"
            " token with read access"
            if token
            else f"export HF_TOKEN=<a token with access to {repo}> before `deploy up`"
        )
        return failed(node, "hub-token", f"{repo} is gated: the Hub answered {status}", fix)
    if status == 404:
        return failed(
            node,
            "hub-token",
            f"{repo} is not found on {endpoint} (or is private to another account)",
            "check the model id, or export HF_TOKEN with read access to it",
        )
    return warned(node, "hub-token", f"the Hub answered {status} for {repo}", "")
