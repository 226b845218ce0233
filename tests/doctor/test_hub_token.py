"""The `hub-token` check against a Hub on loopback (HF_ENDPOINT): a public repo, a gated one
with and without access, an unknown one, and a Hub that does not answer."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.doctor.checks_storage import hub_token_check

GOOD_TOKEN = "hf_loopback_reader"


class _Hub(BaseHTTPRequestHandler):
    """Answers `HEAD /{repo}/resolve/main/config.json` as the Hub does."""

    def do_HEAD(self) -> None:
        auth = self.headers.get("Authorization", "")
        if self.path == "/org/public/resolve/main/config.json":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/cdn/config.json")
        elif self.path == "/org/gated/resolve/main/config.json":
            if auth == f"Bearer {GOOD_TOKEN}":
                self.send_response(200)
            else:
                self.send_response(401 if not auth else 403)
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _check(repo: str, env: dict[str, str]) -> tuple[str, str, str]:
    result = hub_token_check("a", repo, env, present_everywhere=False, timeout_s=10)
    return result.status, result.detail, result.fix


def test_public_repo_passes_without_following_the_redirect(hub: str) -> None:
    assert _check("org/public", {"HF_ENDPOINT": hub}) == ("pass", "org/public readable", "")


def test_gated_repo(hub: str) -> None:
    status, detail, fix = _check("org/gated", {"HF_ENDPOINT": hub})
    assert (status, detail) == ("fail", "org/gated is gated: the Hub answered 401")
    assert fix == "export HF_TOKEN=<a token with access to org/gated> before `deploy up`"
    status, detail, fix = _check("org/gated", {"HF_ENDPOINT": hub, "HF_TOKEN": "hf_other"})
    assert (status, detail) == ("fail", "org/gated is gated: the Hub answered 403")
    assert fix.startswith("accept the license of org/gated on the Hub with the account of HF_TOKEN")
    env = {"HF_ENDPOINT": hub, "HF_TOKEN": GOOD_TOKEN}
    assert _check("org/gated", env) == ("pass", "org/gated readable with HF_TOKEN", "")


def test_unknown_repo_fails(hub: str) -> None:
    status, detail, _ = _check("org/missing", {"HF_ENDPOINT": hub})
    assert (status, detail) == (
        "fail",
        f"org/missing is not found on {hub} (or is private to another account)",
    )


def test_a_hub_that_does_not_answer_warns() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    status, detail, fix = _check("org/public", {"HF_ENDPOINT": f"http://127.0.0.1:{port}"})
    assert status == "warn"
    assert detail.startswith(f"the Hub at http://127.0.0.1:{port} is not reachable from here (")
    assert fix == "pre-download the checkpoint into every node's HF cache, or set HF_ENDPOINT"
