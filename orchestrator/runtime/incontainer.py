"""Checks run inside a service's own container, through its node's Docker endpoint.

The deploying host cannot assume it reaches a node's ports: engines listen, or are published,
on the node's loopback (the safe default), and a node's cluster address is often on a network
the host is not on. Docker's exec API reaches the container wherever the endpoint is (unix://,
tcp://, ssh://), and a command run there shares the container's network namespace, so it sees
the server exactly as the server's own health check does.

Two checks: an HTTP GET (readiness, liveness) and a real one-token request with the engine's
request counters (where `/health` is known to lie: vLLM's rank 0 answers 200 after a follower
or a DP engine died). Both need python3 in the container (every engine image and the simulator
have it); a GET falls back to curl or wget for router images without python.
"""

from __future__ import annotations

import shlex
from typing import Any

# Prints one line: "HTTP <code>", "refused", "reset", "timeout" or "error <why>".
_GET = r"""
import socket, sys, urllib.error, urllib.request
url, timeout = sys.argv[1], float(sys.argv[2])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(url, timeout=timeout) as response:
        print("HTTP", response.status)
except urllib.error.HTTPError as error:
    print("HTTP", error.code)
except Exception as error:
    reason = getattr(error, "reason", error)
    if isinstance(reason, ConnectionRefusedError):
        print("refused")
    elif isinstance(reason, (ConnectionResetError, ConnectionAbortedError)) or "RemoteDisconnected" in type(error).__name__:
        print("reset")
    elif isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in str(reason):
        print("timeout")
    else:
        print("error", str(reason)[:80].replace("\n", " "))
"""

_SHELL_GET = (
    'if command -v curl >/dev/null 2>&1; then code=$(curl -s -o /dev/null -w "%{{http_code}}" '
    "--max-time {t} {url}); rc=$?; case $rc in 0) echo HTTP $code;; 7) echo refused;; "
    "28) echo timeout;; 52|56) echo reset;; *) echo error curl $rc;; esac; "
    "elif command -v wget >/dev/null 2>&1; then if wget -q -O /dev/null -T {t} {url}; "
    "then echo HTTP 200; else echo error wget; fi; else echo noclient; fi"
)

# One real request per engine behind the API server, sent together (DP balances them across
# its engines), plus the per-engine request counters before it. Prints one line:
# "ok", "busy <waiting+running>", "HTTP <code> <body>", "timeout", "error <why>".
_REQUEST = r"""
import json, os, re, sys, threading, urllib.error, urllib.request
base, timeout, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
headers = {"content-type": "application/json"}
key = os.environ.get("VLLM_API_KEY") or os.environ.get("SGLANG_API_KEY")
if key:
    headers["authorization"] = "Bearer " + key
def get(path):
    request = urllib.request.Request(base + path, headers=headers)
    with opener.open(request, timeout=timeout) as response:
        return response.read()
try:
    metrics = get("/metrics").decode("utf-8", "replace")
except Exception:
    metrics = ""
load = 0.0
for match in re.finditer(r"^vllm:num_requests_(?:running|waiting)\{[^}]*\}\s+([0-9.eE+]+)", metrics, re.M):
    load += float(match.group(1))
if load > 0:
    print("busy", int(load))
    sys.exit(0)
try:
    model = json.loads(get("/v1/models"))["data"][0]["id"]
except Exception as error:
    print("error models:", str(error)[:80].replace("\n", " "))
    sys.exit(0)
body = json.dumps({"model": model, "prompt": "ping", "max_tokens": 1, "temperature": 0}).encode()
results = []
def one():
    request = urllib.request.Request(base + "/v1/completions", data=body, headers=headers)
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read()
            results.append("ok")
    except urllib.error.HTTPError as error:
        text = error.read()[:120].decode("utf-8", "replace").replace("\n", " ")
        results.append("HTTP %d %s" % (error.code, text))
    except Exception as error:
        reason = str(getattr(error, "reason", error))
        results.append("timeout" if "timed out" in reason else "error " + reason[:80])
threads = [threading.Thread(target=one) for _ in range(count)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(timeout + 5)
bad = [r for r in results if r != "ok"]
print(bad[0] if bad else ("ok" if len(results) == count else "timeout"))
"""


def _run(container: Any, argv: list[str]) -> tuple[int | None, str]:
    """(exit code, last output line) of a command run in the container; (None, why) when the
    container cannot run it (not running, gone)."""
    import docker.errors

    result = None
    for attempt in range(3):
        try:
            result = container.exec_run(argv, stdout=True, stderr=True)
            break
        except docker.errors.NotFound:
            return None, "container gone"
        except docker.errors.APIError as error:
            return None, str(error.explanation or error)[:80]
        except OSError as error:
            # The SDK's ssh:// transport can fail closing a finished exec's stream (a broken
            # pipe to the ssh process): the check did not fail, its transport did. Again.
            if attempt == 2:
                return None, f"could not run a check in the container: {error}"[:80]
    if result is None:
        return None, "could not run a check in the container"
    output = (result.output or b"").decode("utf-8", errors="replace").strip().splitlines()
    return result.exit_code, output[-1] if output else ""


def _verdict(line: str) -> tuple[bool, str]:
    words = line.split()
    if len(words) >= 2 and words[0] == "HTTP" and words[1].isdigit():
        code = int(words[1])
        return 200 <= code < 300, f"HTTP {code}"
    if line == "refused":
        return False, "connection refused"
    if line == "reset":
        return False, "not listening yet"
    if line == "timeout":
        return False, "timed out"
    return False, line[:80] or "no answer"


def http_get(container: Any, url: str, timeout_s: float) -> tuple[bool, str]:
    """(ready, detail) of a GET of `url` as seen from inside `container`."""
    code, line = _run(container, ["python3", "-c", _GET, url, f"{timeout_s:g}"])
    if code is None:
        return False, line
    if code in (126, 127) or not line or "executable file not found" in line:
        command = _SHELL_GET.format(t=max(1, int(timeout_s)), url=shlex.quote(url))
        code, line = _run(container, ["sh", "-c", command])
        if code is None:
            return False, line
        if line == "noclient" or code in (126, 127):
            return False, "no python3, curl or wget in the image to probe with"
    return _verdict(line)


def real_request(container: Any, base_url: str, timeout_s: float, engines: int) -> tuple[str, str]:
    """A one-token completion per engine, sent from inside the container.

    ("ok" | "busy" | "failed", detail). "busy": requests are already running or waiting, so
    the engine is serving and a probe request would only queue behind them.
    """
    code, line = _run(
        container,
        ["python3", "-c", _REQUEST, base_url, f"{timeout_s:g}", str(max(1, engines))],
    )
    if code is None:
        return "failed", line
    if line == "ok":
        return "ok", "answered a 1-token request"
    if line.startswith("busy"):
        return "busy", f"serving ({line.split()[-1]} requests in flight)"
    if code in (126, 127) or not line:
        return "ok", "cannot send a request from inside (no python3)"
    if line == "timeout":
        return "failed", f"a 1-token request got no answer in {timeout_s:.0f}s while idle"
    return "failed", f"a 1-token request failed: {line[:120]}"
