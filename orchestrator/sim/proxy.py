"""Simulated routers (vllm-router, sglang-router, smg) and nginx: HTTP proxies to engines.

Routers: `/health` answers 200 as soon as the router listens; `/readiness` answers 200 only
when every worker's `/health` does. OpenAI requests go to the decode (PD) or the next worker
(round robin); responses, streams included, are passed through chunk by chunk.
- SGLang-style PD (sglang-router, smg): the router adds `bootstrap_host`, `bootstrap_port`
  and `bootstrap_room` and sends the request to a prefill and a decode server at once,
  answering with the decode server's response.
- vllm-router PD: the request goes to a prefill server first with `max_tokens: 1`, then to a
  decode server with the prefill's `kv_transfer_params`.

nginx: each `listen` serves its locations; a `proxy_pass` to an upstream picks a server
(least connections with `least_conn`, else round robin), tries the next one when a
connection fails, and answers nginx's 502 page when none can be reached.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from orchestrator.sim.control import Control, access_middleware, bind_socket, start_site
from orchestrator.sim.logs import SimLog
from orchestrator.sim.settings import Location, NginxSettings, RouterSettings, Upstream

# Headers that belong to one hop and must not be copied through a proxy.
_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "content-encoding",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
}
_API_PATHS = ("/v1/completions", "/v1/chat/completions", "/generate")
_NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


class UpstreamUnreachable(Exception):
    pass


def _forward_headers(request: web.Request) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}


async def _relay(
    request: web.Request,
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: bytes | None,
    headers: dict[str, str],
) -> web.StreamResponse:
    """Send one request upstream and pass its response back as it arrives."""
    try:
        upstream = await session.request(method, url, data=body, headers=headers)
    except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as error:
        raise UpstreamUnreachable(f"{url}: {error}") from None
    async with upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for key, value in upstream.headers.items():
            if key.lower() not in _HOP_HEADERS:
                response.headers[key] = value
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


def _session() -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    return aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0))


class RouterServer:
    def __init__(self, settings: RouterSettings, log: SimLog) -> None:
        self.settings = settings
        self.log = log
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._workers = itertools.cycle(settings.workers or settings.decode)
        self._prefills = itertools.cycle(settings.prefill)
        self._decodes = itertools.cycle(settings.decode)

    async def run(self, control: Control) -> None:
        s = self.settings
        sock = bind_socket(s.host, s.port)
        control.ports["http"] = sock.getsockname()[1]
        control.bound.set()
        self._session = _session()
        mode = "PD disaggregation" if s.pd else "regular (round robin)"
        self.log.info(f"Starting router in {mode} mode")
        for target in s.prefill:
            self.log.info(f"Prefill worker {target.url} (bootstrap port {target.bootstrap_port})")
        for url in s.decode or s.workers:
            self.log.info(f"{'Decode w' if s.pd else 'W'}orker {url}")
        self._runner = await start_site(self._app(control), sock)
        self.log.info(f"Starting server on {s.host}:{control.ports['http']}")
        control.ready.set()
        await control.wait_stop()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def crash_lines(self) -> list[str]:
        return ["router terminated unexpectedly (simulated fault)"]

    def start_failure_line(self) -> str:
        return "Error: failed to start the router (simulated fault exit-on-start)"

    def _app(self, control: Control) -> web.Application:
        app = web.Application(
            middlewares=[control.hang_middleware()], client_max_size=64 * 1024 * 1024
        )
        app.router.add_get("/health", self._health)
        app.router.add_get("/liveness", self._health)
        app.router.add_get("/readiness", self._readiness)
        app.router.add_get("/health_generate", self._readiness)
        app.router.add_get("/workers", self._list_workers)
        app.router.add_get("/list_workers", self._list_workers)
        for path in (
            "/v1/models",
            "/model_info",
            "/get_model_info",
            "/server_info",
            "/get_server_info",
        ):
            app.router.add_get(path, self._to_first_worker)
        for path in _API_PATHS:
            app.router.add_post(path, self._api)
        return app

    def _all_workers(self) -> list[str]:
        s = self.settings
        return [t.url for t in s.prefill] + list(s.decode) + list(s.workers)

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def _readiness(self, request: web.Request) -> web.Response:
        assert self._session is not None
        unhealthy = []
        for url in self._all_workers():
            try:
                async with self._session.get(
                    url.rstrip("/") + "/health", timeout=aiohttp.ClientTimeout(total=5)
                ) as resp:
                    if resp.status != 200:
                        unhealthy.append(url)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                unhealthy.append(url)
        if unhealthy:
            return web.json_response(
                {"status": "not ready", "unhealthy_workers": unhealthy}, status=503
            )
        return web.json_response({"status": "ready"})

    async def _list_workers(self, request: web.Request) -> web.Response:
        return web.json_response({"urls": self._all_workers()})

    async def _to_first_worker(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        s = self.settings
        url = (s.decode or s.workers)[0].rstrip("/") + request.path_qs
        try:
            return await _relay(request, self._session, "GET", url, None, _forward_headers(request))
        except UpstreamUnreachable as error:
            return self._unavailable(str(error))

    def _unavailable(self, detail: str) -> web.Response:
        self.log.warning(f"worker unreachable: {detail}")
        return web.json_response(
            {
                "error": {
                    "message": f"No available workers: {detail}",
                    "type": "service_unavailable",
                    "code": 503,
                }
            },
            status=503,
        )

    async def _api(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        raw = await request.read()
        headers = _forward_headers(request)
        if not self.settings.pd:
            url = next(self._workers).rstrip("/") + request.path_qs
            try:
                return await _relay(request, self._session, "POST", url, raw, headers)
            except UpstreamUnreachable as error:
                return self._unavailable(str(error))
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response({"error": "invalid JSON body"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        prefill = next(self._prefills)
        decode = next(self._decodes).rstrip("/") + request.path_qs
        prefill_url = prefill.url.rstrip("/") + request.path_qs
        try:
            if self.settings.flavour == "vllm-router":
                return await self._vllm_pd(request, body, prefill_url, decode, headers)
            return await self._sglang_pd(
                request, body, prefill.url, prefill.bootstrap_port, prefill_url, decode, headers
            )
        except UpstreamUnreachable as error:
            return self._unavailable(str(error))

    async def _sglang_pd(
        self,
        request: web.Request,
        body: dict[str, Any],
        prefill_base: str,
        bootstrap_port: int | None,
        prefill_url: str,
        decode_url: str,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        assert self._session is not None
        body = {
            **body,
            "bootstrap_host": urlsplit(prefill_base).hostname,
            "bootstrap_port": bootstrap_port,
            "bootstrap_room": random.getrandbits(63),
        }
        payload = json.dumps(body).encode()
        prefill_task = asyncio.ensure_future(self._drain(prefill_url, payload, headers))
        try:
            return await _relay(request, self._session, "POST", decode_url, payload, headers)
        finally:
            try:
                await prefill_task
            except UpstreamUnreachable as error:
                self.log.warning(f"prefill request failed: {error}")

    async def _drain(self, url: str, payload: bytes, headers: dict[str, str]) -> int:
        assert self._session is not None
        try:
            async with self._session.post(url, data=payload, headers=headers) as resp:
                await resp.read()
                return resp.status
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as error:
            raise UpstreamUnreachable(f"{url}: {error}") from None

    async def _vllm_pd(
        self,
        request: web.Request,
        body: dict[str, Any],
        prefill_url: str,
        decode_url: str,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        assert self._session is not None
        prefill_body = {
            **body,
            "max_tokens": 1,
            "stream": False,
            "kv_transfer_params": {"do_remote_decode": True, "do_remote_prefill": False},
        }
        prefill_body.pop("stream_options", None)
        prefill_body.pop("max_completion_tokens", None)
        try:
            async with self._session.post(prefill_url, json=prefill_body, headers=headers) as resp:
                answer = await resp.read()
                if resp.status != 200:
                    return web.Response(
                        body=answer, status=resp.status, content_type=resp.content_type
                    )
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as error:
            raise UpstreamUnreachable(f"{prefill_url}: {error}") from None
        try:
            params = json.loads(answer).get("kv_transfer_params")
        except (ValueError, AttributeError):
            params = None
        decode_body = {**body, "kv_transfer_params": params or {"do_remote_prefill": True}}
        payload = json.dumps(decode_body).encode()
        return await _relay(request, self._session, "POST", decode_url, payload, headers)


class NginxServer:
    def __init__(self, settings: NginxSettings, log: SimLog) -> None:
        self.settings = settings
        self.log = log
        self._session: aiohttp.ClientSession | None = None
        self._runners: list[web.AppRunner] = []
        self._active: dict[str, int] = {}
        self._rr: dict[str, itertools.count[int]] = {}

    async def run(self, control: Control) -> None:
        sockets = []
        for index, server in enumerate(self.settings.servers):
            sock = bind_socket(server.host, server.port)
            sockets.append(sock)
            control.ports["http" if index == 0 else f"http{index}"] = sock.getsockname()[1]
        control.bound.set()
        self._session = _session()
        for server, sock in zip(self.settings.servers, sockets, strict=True):
            app = web.Application(
                middlewares=[control.hang_middleware(), access_middleware(self._access)],
                client_max_size=64 * 1024 * 1024,
            )
            handler = self._handler(server.locations)
            app.router.add_route("*", "/{tail:.*}", handler)
            self._runners.append(await start_site(app, sock))
        self.log.info('using the "epoll" event method')
        self.log.info("start worker processes")
        control.ready.set()
        await control.wait_stop()

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def crash_lines(self) -> list[str]:
        return ["worker process exited on signal 9 (simulated fault)"]

    def start_failure_line(self) -> str:
        return "nginx: [emerg] simulated fault exit-on-start"

    def _access(self, peer: str, method: str, path: str, status: int, reason: str) -> None:
        self.log.raw(f'{peer.rsplit(":", 1)[0]} - - "{method} {path} HTTP/1.1" {status}')

    def _handler(self, locations: Sequence[Location]) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            location = _match(locations, request.path)
            if location is None:
                return web.Response(status=404, text="404 Not Found")
            if location.return_status is not None:
                return web.Response(status=location.return_status, text=location.return_text)
            assert location.proxy_to is not None
            path = request.path_qs
            if location.proxy_path is not None:  # proxy_pass with a URI replaces the prefix
                path = location.proxy_path + request.path_qs[len(location.prefix) :]
            return await self._proxy(request, location.proxy_to, path)

        return handle

    async def _proxy(self, request: web.Request, target: str, path: str) -> web.StreamResponse:
        assert self._session is not None
        upstream = self.settings.upstreams.get(target)
        candidates = self._order(upstream) if upstream else [target]
        body = await request.read()
        headers = _forward_headers(request)
        for server in candidates:
            self._active[server] = self._active.get(server, 0) + 1
            try:
                return await _relay(
                    request,
                    self._session,
                    request.method,
                    f"http://{server}{path}",
                    body or None,
                    headers,
                )
            except UpstreamUnreachable as error:
                self.log.error(
                    f"connect() failed (111: Connection refused) while connecting to "
                    f'upstream, upstream: "http://{server}{path}" ({error})'
                )
            finally:
                self._active[server] -= 1
        return web.Response(status=502, text=_NGINX_502, content_type="text/html")

    def _order(self, upstream: Upstream) -> list[str]:
        """Servers in the order to try: the balancing choice first, then the others."""
        servers = list(upstream.servers)
        counter = self._rr.setdefault(upstream.name, itertools.count())
        offset = next(counter) % len(servers)
        rotated = servers[offset:] + servers[:offset]
        if upstream.least_conn:
            rotated.sort(key=lambda server: self._active.get(server, 0))  # stable: ties rotate
        seen: list[str] = []
        for server in rotated:
            if server not in seen:
                seen.append(server)
        return seen


def _match(locations: Sequence[Location], path: str) -> Location | None:
    best: Location | None = None
    for location in locations:
        if location.exact:
            if path == location.prefix:
                return location
            continue
        if path.startswith(location.prefix) and (
            best is None or len(location.prefix) > len(best.prefix)
        ):
            best = location
    return best
