"""The environment a node's mount sources are read in: that node's, not the deploying host's.

A mount source such as `${HF_HOME:-~/.cache/huggingface}` or `~/.cache/deploy-jit/...` names a
directory on the node that runs the container. compose, run on the node, reads it with the
node's `$HOME` and `$HF_HOME`; `deploy up` reaching the node over `ssh://` must do the same,
so it asks the node once (over the same ssh the Docker client uses) and keeps every other
variable (secrets are the deploying host's, by design). Local and `tcp://` endpoints keep the
deploying host's environment: a local daemon shares it, and a `tcp://` daemon has no login to
ask (state its paths in the cluster file's model path or use an `ssh://` endpoint).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Mapping

from orchestrator.errors import DockerUnavailableError

# What the node's login shell says: its home and its Hugging Face home (empty when unset).
_QUERY = 'printf "%s\\n%s\\n" "$HOME" "${HF_HOME:-}"'
_TIMEOUT_S = 60
_lock = threading.Lock()
_cache: dict[str, tuple[str, str]] = {}


def _ask(endpoint: str) -> tuple[str, str]:
    from orchestrator.docker.endpoints import _ssh_target

    if shutil.which("ssh") is None:
        raise DockerUnavailableError(
            f"cannot reach {endpoint}: ssh is not installed here",
            "install the OpenSSH client (Debian: apt-get install openssh-client)",
        )
    argv = ["ssh", "-o", "BatchMode=yes", *_ssh_target(endpoint), _QUERY]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise DockerUnavailableError(
            f"{endpoint} did not answer over ssh within {_TIMEOUT_S} s",
            "check that the node is up and `ssh` reaches it without a prompt",
        ) from None
    lines = done.stdout.splitlines()
    if done.returncode != 0 or not lines or not lines[0].startswith("/"):
        reason = (done.stderr.strip().splitlines() or ["no home directory reported"])[-1]
        raise DockerUnavailableError(
            f"cannot read $HOME on {endpoint} over ssh: {reason}",
            "check that `ssh` reaches the node without a prompt (keys or agent)",
        )
    return lines[0], lines[1] if len(lines) > 1 else ""


def node_environment(endpoint: str, host_env: Mapping[str, str]) -> dict[str, str]:
    """`host_env` with `HOME` and `HF_HOME` as the node behind `endpoint` has them."""
    env = dict(host_env)
    if not endpoint.startswith("ssh://"):
        return env
    with _lock:
        if endpoint not in _cache:
            _cache[endpoint] = _ask(endpoint)
        home, hf_home = _cache[endpoint]
    env["HOME"] = home
    if hf_home:
        env["HF_HOME"] = hf_home
    else:
        env.pop("HF_HOME", None)
    return env
