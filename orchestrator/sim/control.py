"""What every simulated program shares: its stop/hang state, its sockets and its aiohttp runner."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

# Seconds that a stopping server gives in-flight requests before dropping them.
SHUTDOWN_TIMEOUT = 1.0
LISTEN_BACKLOG = 2048  # uvicorn's default --backlog

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Control:
    """Lifecycle of one simulated program, shared by its servers and the fault timer.

    `ports` and `ready` are also read from other threads (the test handle), hence the
    threading primitives next to the asyncio ones.
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.stop_requested = asyncio.Event()
        self.hung = asyncio.Event()
        self.ports: dict[str, int] = {}
        self.bound = threading.Event()
        self.ready = threading.Event()
        self.exit_code = 0
        # The simulator is the container's program (not a test's thread): it may start
        # child processes, as the engines do.
        self.own_process = False

    def stop(self, exit_code: int = 0) -> None:
        self.exit_code = exit_code
        self.stop_requested.set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep, returning early (True) when a stop is requested."""
        if seconds <= 0:
            return self.stop_requested.is_set()
        try:
            await asyncio.wait_for(self.stop_requested.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            return False
        return True

    async def wait_stop(self) -> None:
        await self.stop_requested.wait()

    async def hang_if_hung(self) -> None:
        """A hung program accepts connections and never answers: park until stopped."""
        if self.hung.is_set():
            await asyncio.Event().wait()  # until the server's shutdown cancels it

    def hang_middleware(self) -> Any:
        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            await self.hang_if_hung()
            return await handler(request)

        return middleware


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind without listening: connections are refused until the server starts serving it.

    This is what vLLM does while it loads weights (and what a not-yet-started SGLang server
    looks like to a client), and it reserves the port, so port 0 can be resolved early.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise OSError(
            error.errno,
            f"[Errno {error.errno}] error while attempting to bind on "
            f"address {address!r}: {error.strerror}",
        ) from None
    sock.setblocking(False)
    return sock


def local_url(host: str, port: int) -> str:
    """A URL a client on this machine can use for a server bound on host:port."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _aiohttp_version() -> tuple[int, int]:
    import aiohttp

    major, minor = aiohttp.__version__.split(".")[:2]
    return int(major), int(minor)


async def start_site(app: web.Application, sock: socket.socket) -> web.AppRunner:
    """Serve `app` on an already bound socket (this is when it starts listening)."""
    # The shutdown timeout moved from the site to the runner in aiohttp 3.9; the image's Debian
    # aiohttp is 3.8, a developer's may be newer.
    new_api = _aiohttp_version() >= (3, 9)
    runner_kwargs: dict[str, Any] = {"handle_signals": False, "access_log": None}
    if new_api:
        runner_kwargs["shutdown_timeout"] = SHUTDOWN_TIMEOUT
    runner = web.AppRunner(app, **runner_kwargs)
    await runner.setup()
    site_kwargs: dict[str, Any] = {} if new_api else {"shutdown_timeout": SHUTDOWN_TIMEOUT}
    # uvicorn's (and so vLLM's and SGLang's) listen backlog: a burst of thousands of
    # connections queues instead of being reset (aiohttp's default is 128).
    site_kwargs["backlog"] = LISTEN_BACKLOG
    site = web.SockSite(runner, sock, **site_kwargs)
    await site.start()
    return runner


def access_middleware(log_access: Callable[[str, str, str, int, str], None]) -> Any:
    """uvicorn-style access lines: `peer - "METHOD PATH HTTP/1.1" STATUS REASON`."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        peer = request.remote or "-"
        port = ""
        transport = request.transport
        if transport is not None:
            info = transport.get_extra_info("peername")
            if isinstance(info, tuple) and len(info) >= 2:
                port = f":{info[1]}"
        log_access(
            f"{peer}{port}", request.method, request.path_qs, response.status, response.reason or ""
        )
        return response

    return middleware
