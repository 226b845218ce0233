"""Who restarts what, and how a rank > 0 knows it still has a group.

One decision, used by the compose file, `launch.sh` and `deploy up` alike (all read
`ServiceSpec.restart`):

- a single-container instance (and every router or load balancer) restarts by Docker's own
  policy, `unless-stopped`: Docker brings it back after a crash, a daemon restart or a reboot,
  with or without deploy;
- the ranks of a multi-node instance get no Docker restart (`no`): a rank that comes back
  alone cannot rejoin its peers' collectives, so deploy's supervisor restarts the group whole.

Ranks > 0 serve no HTTP. Their health check connects to the rendezvous endpoint that rank 0
hosts for the life of the instance (torch's TCPStore behind vLLM `--master-port` and SGLang
`--dist-init-addr`, Ray's GCS behind `--address`): when rank 0 is gone, the rank has lost its
group and turns unhealthy. vLLM's `--data-parallel-rpc-port` is not such an endpoint: rank 0
closes it once the start-up handshake is done, so a check on it would fail on every healthy
instance; headless DP ranks are judged by their process (and rank 0 by a real request).
"""

from __future__ import annotations

from typing import Literal

RestartPolicy = Literal["no", "unless-stopped"]

# Busy is not dead: a saturated engine answers its health check late. Once a service served,
# its probe must keep failing at least this long (and `retries` times) before it counts as hung.
LIVENESS_WINDOW_MIN_S = 60


def liveness_window_s(interval_s: int, retries: int) -> int:
    """Seconds of failing health checks, after the service was ready once, before a restart."""
    return max(LIVENESS_WINDOW_MIN_S, 3 * interval_s * retries)


def restart_policy(group: str | None) -> RestartPolicy:
    """Docker's restart policy for a service of restart group `group` (None: on its own)."""
    return "no" if group else "unless-stopped"


def _split_host_port(value: str) -> tuple[str, int] | None:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def group_peer(args: list[str]) -> tuple[str, int] | None:
    """The (host, port) of rank 0's rendezvous endpoint named on a rank's command line."""
    values: dict[str, str] = {}
    for index, word in enumerate(args):
        if word.startswith("--") and "=" in word:
            name, _, value = word.partition("=")
            values[name] = value
        elif word.startswith("--") and index + 1 < len(args):
            values[word] = args[index + 1]
    for address in ("--dist-init-addr", "--address"):
        if address in values:
            return _split_host_port(values[address])
    host, port = values.get("--master-addr"), values.get("--master-port")
    if host and port and port.isdigit():
        return host, int(port)
    return None


def peer_check_command(host: str, port: int) -> str:
    """The shell line of a rank's health check: rank 0's rendezvous endpoint accepts a TCP
    connection. Python answers in the engine images and the simulator image."""
    import shlex

    connect = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()"
    return f"python3 -c {shlex.quote(connect)} {shlex.quote(host)} {port}"


def restart_note(restart: str, group: str | None) -> str:
    """One line saying who restarts a service, for the compose file and the README."""
    if restart == "no":
        who = f"group {group}" if group else "it"
        return (
            f"no Docker restart: deploy's supervisor restarts {who} whole "
            "(a rank that comes back alone cannot rejoin its peers)"
        )
    return f"Docker restarts this container ({restart}); deploy's supervisor only watches it"
