"""A simulated vLLM or SGLang server: the startup a supervisor sees and the API a client sees.

Startup: the HTTP port is bound at once but listens only when "weights" are loaded, so
connections are refused meanwhile (both engines do this). SGLang then warms up: `/health`,
`/health_generate` and `/ready` answer 503 until warmup ends. vLLM has no warmup state.
`--headless` (vLLM) and `--node-rank >= 1` (SGLang) serve no HTTP at all.

Generation: request timing runs against the event loop's monotonic clock from the moment the
request gets a slot: token i is sent at start + TTFT + i * TPOT, so sleeps never add up to
drift. Requests are independent; `max_concurrency` (DEPLOY_SIM_MAX_CONCURRENCY,
`--max-num-seqs`, `--max-running-requests`) makes the extra ones wait in a queue.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from orchestrator.sim.control import Control, Handler, access_middleware, bind_socket, start_site
from orchestrator.sim.group import EngineCores, GroupLink
from orchestrator.sim.logs import SimLog
from orchestrator.sim.metrics import EngineMetrics
from orchestrator.sim.openai_format import ResponseBuilder, error_body, native_chunk, sse
from orchestrator.sim.settings import Behaviour, EngineSettings
from orchestrator.sim.tokens import GenerationRequest, RequestError, output_text, output_token
from orchestrator.sim.tokens import parse_generation as parse_openai

Emit = Callable[[int], Awaitable[None]]

STATS_INTERVAL_S = 10.0
SGLANG_DEFAULT_MAX_NEW_TOKENS = 128


def _vllm_permission(created: int) -> dict[str, Any]:
    """vLLM's ModelPermission, as its /v1/models lists one per model."""
    return {
        "id": f"modelperm-{uuid.uuid4().hex}",
        "object": "model_permission",
        "created": created,
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }


class EngineServer:
    def __init__(self, settings: EngineSettings, behaviour: Behaviour, log: SimLog) -> None:
        self.settings = settings
        self.behaviour = behaviour
        self.log = log
        self.metrics = EngineMetrics(behaviour.kv_capacity_tokens)
        self.warm = False  # SGLang's server_status == Up
        concurrency = behaviour.max_concurrency or settings.max_concurrency
        self._slots = asyncio.Semaphore(concurrency) if concurrency else None
        self._runners: list[web.AppRunner] = []
        self._sockets: list[socket.socket] = []
        self._control: Control | None = None
        self._engine_id = uuid.uuid4().hex[:8]
        self.group = GroupLink(settings, log)
        self.engine_dead = False  # an engine core died: /health answers 503 until exit
        self.cores = EngineCores(settings, log, self._engine_died)

    # ----------------------------------------------------------------- lifecycle
    async def run(self, control: Control) -> None:
        self._control = control
        s = self.settings
        sockets = self._sockets
        if s.http:
            sockets.append(bind_socket(s.host, s.port))
            control.ports["http"] = sockets[0].getsockname()[1]
            if s.engine == "sglang" and s.disaggregation_mode == "prefill":
                sockets.append(bind_socket(s.host, s.bootstrap_port))
                control.ports["bootstrap"] = sockets[1].getsockname()[1]
        if s.rendezvous_port is not None:
            # Followers (and peers' health checks) connect here, as to torch's TCPStore.
            await self.group.serve(bind_socket("0.0.0.0", s.rendezvous_port))
        control.bound.set()
        self.group.follow(control)
        if control.own_process:
            self.cores.start(control)
        self._log_loading()
        if await control.sleep(self.behaviour.load_seconds):
            return
        self._log_loaded()
        self.group.handshake_done()
        if not s.http:
            what = "headless mode" if s.engine == "vllm" else "node rank >= 1"
            self.log.info(f"Running in {what}: no API server on this node.", "serve.py:1")
            control.ready.set()
            await control.wait_stop()
            return
        if s.engine == "vllm" and self.behaviour.faults.never_ready:
            await control.wait_stop()  # the engine never reports ready, so uvicorn never listens
            return
        self._runners.append(await start_site(self._app(control), sockets[0]))
        if "bootstrap" in control.ports:
            self._runners.append(await start_site(self._bootstrap_app(control), sockets[1]))
            self.log.info(f"Bootstrap server started on port {control.ports['bootstrap']}")
        self._log_listening(control.ports["http"])
        stats = asyncio.ensure_future(self._stats_loop(control))
        try:
            if s.engine == "sglang":
                if self.behaviour.faults.never_ready:
                    await control.wait_stop()
                    return
                warmup = 0.0 if s.skip_warmup else self.behaviour.warmup_seconds
                if await control.sleep(warmup):
                    return
                self.warm = True
                self.log.info("End of prefill warmup with status 200, resp: [{'text': ' the'}]")
                self.log.info("The server is fired up and ready to roll!")
            control.ready.set()
            await control.wait_stop()
        finally:
            stats.cancel()

    async def close(self) -> None:
        await self.group.close()
        await self.cores.close()
        if self.settings.http and self._runners:
            if self.settings.engine == "vllm":
                self.log.info("Shutting down FastAPI HTTP server.", "launcher.py:1")
            self.log.uvicorn("Shutting down")
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        for sock in self._sockets:  # bound but never served when stopped while loading
            sock.close()
        self._sockets.clear()

    @property
    def crash_exit_code(self) -> int:
        """vLLM's API server exits 0 when its engine dies after start-up (uvicorn's orderly
        shutdown); a failed start and SGLang's launcher exit non-zero."""
        ready = self._control is not None and self._control.ready.is_set()
        return 0 if self.settings.engine == "vllm" and ready else 1

    def crash_lines(self) -> list[str]:
        fault = self.behaviour.faults.describe()
        if self.settings.engine == "vllm":
            return [
                "EngineCore encountered a fatal error.",
                f"EngineDeadError: EngineCore died unexpectedly (simulated fault {fault}).",
            ]
        return [
            "Scheduler hit an exception: RuntimeError: CUDA error: an illegal memory access was encountered",
            f"Received sigquit from a child process. It usually means the child failed. (simulated fault {fault})",
        ]

    def start_failure_line(self) -> str:
        return (
            "RuntimeError: Engine core initialization failed. See root cause above. "
            "(simulated fault exit-on-start)"
        )

    # ----------------------------------------------------------------- logs
    def _log_loading(self) -> None:
        s = self.settings
        if s.engine == "vllm":
            self.log.info(f"vLLM API server version {s.version}", "utils.py:1")
            self.log.info(f"non-default args: {dict(s.server_args)}", "utils.py:1")
            self.log.info(f"Starting to load model {s.model}...", "gpu_model_runner.py:1")
            self.log.info("Loading weights...", "default_loader.py:1")
        else:
            self.log.info(
                f"server_args=ServerArgs({', '.join(f'{k}={v!r}' for k, v in s.server_args.items())})"
            )
            self.log.info("Load weight begin. avail mem=78.50 GB")

    def _log_loaded(self) -> None:
        seconds = self.behaviour.load_seconds
        gib = self.behaviour.weights_gib or 0.0
        if self.settings.engine == "vllm":
            self.log.info(f"Loading weights took {seconds:.2f} seconds", "default_loader.py:1")
            self.log.info(
                f"Model loading took {gib:.4f} GiB memory and {seconds:.6f} seconds",
                "gpu_model_runner.py:1",
            )
        else:
            self.log.info(
                f"Load weight end. type=Simulated, dtype=torch.bfloat16, "
                f"avail mem={max(0.0, 78.5 - gib):.2f} GB, mem usage={gib:.2f} GB."
            )

    def _log_listening(self, port: int) -> None:
        s = self.settings
        if s.engine == "vllm":
            self.log.info(f"Starting vLLM API server 0 on http://{s.host}:{port}", "launcher.py:1")
        self.log.uvicorn(f"Started server process [{os.getpid()}]")
        self.log.uvicorn("Waiting for application startup.")
        self.log.uvicorn("Application startup complete.")
        if s.engine == "sglang":
            self.log.uvicorn(f"Uvicorn running on http://{s.host}:{port} (Press CTRL+C to quit)")

    async def _stats_loop(self, control: Control) -> None:
        """The engines' periodic throughput line, printed only when something happened."""
        last_prompt, last_gen = 0, 0
        while not await control.sleep(STATS_INTERVAL_S):
            m = self.metrics
            prompt, gen = m.prompt_tokens - last_prompt, m.generation_tokens - last_gen
            last_prompt, last_gen = m.prompt_tokens, m.generation_tokens
            if not (prompt or gen or m.running or m.waiting):
                continue
            if self.settings.engine == "vllm":
                self.log.info(
                    f"Engine 000: Avg prompt throughput: {prompt / STATS_INTERVAL_S:.1f} tokens/s, "
                    f"Avg generation throughput: {gen / STATS_INTERVAL_S:.1f} tokens/s, "
                    f"Running: {m.running} reqs, Waiting: {m.waiting} reqs, "
                    f"GPU KV cache usage: {100 * m.kv_usage:.1f}%, Prefix cache hit rate: 0.0%",
                    "loggers.py:1",
                )
            else:
                self.log.info(
                    f"Decode batch, #running-req: {m.running}, #token: {m.kv_tokens_in_use}, "
                    f"token usage: {m.kv_usage:.2f}, gen throughput (token/s): "
                    f"{gen / STATS_INTERVAL_S:.2f}, #queue-req: {m.waiting},"
                )

    # ----------------------------------------------------------------- app
    def _app(self, control: Control) -> web.Application:
        middlewares = [control.hang_middleware(), self._auth_middleware()]
        if self.settings.access_log:
            middlewares.insert(1, access_middleware(self.log.access))
        app = web.Application(middlewares=middlewares, client_max_size=64 * 1024 * 1024)
        r = app.router
        r.add_get("/health", self._health)
        r.add_route("*", "/ping", self._health)
        r.add_get("/v1/models", self._models)
        r.add_post("/v1/completions", self._completions)
        r.add_post("/v1/chat/completions", self._chat)
        if self.settings.engine == "vllm":
            r.add_get("/metrics", self._metrics)
            r.add_get("/version", self._version)
            r.add_get("/load", self._load)
        else:
            r.add_get("/health_generate", self._health)
            r.add_get("/ready", self._health)
            r.add_get("/model_info", self._model_info)
            r.add_get("/get_model_info", self._model_info)
            r.add_get("/server_info", self._server_info)
            r.add_get("/get_server_info", self._server_info)
            r.add_post("/generate", self._generate)
            r.add_route("*", "/flush_cache", self._flush_cache)
            if self.settings.enable_metrics:
                r.add_get("/metrics", self._metrics)
        return app

    def _bootstrap_app(self, control: Control) -> web.Application:
        """SGLang's prefill bootstrap server: where decode workers register for KV transfer."""
        app = web.Application(middlewares=[control.hang_middleware()])

        async def health(request: web.Request) -> web.Response:
            return web.Response(text="OK")

        async def route(request: web.Request) -> web.Response:
            return (
                web.json_response({"prefill_instances": []})
                if request.method == "GET"
                else (web.Response(text="OK"))
            )

        app.router.add_get("/health", health)
        app.router.add_route("*", "/route", route)
        return app

    def _auth_middleware(self) -> Any:
        key = self.settings.api_key
        engine = self.settings.engine

        def protected(path: str) -> bool:
            if engine == "vllm":  # only the API prefixes (vLLM's --api-key help)
                return path.startswith(("/v1", "/v2", "/inference"))
            return not path.startswith(("/health", "/ready", "/metrics"))  # SGLang: auth.py

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            authorized = request.headers.get("Authorization", "") == f"Bearer {key}"
            if key and protected(request.path) and not authorized:
                return web.json_response({"error": "Unauthorized"}, status=401)
            return await handler(request)

        return middleware

    # ----------------------------------------------------------------- probes, metadata
    def _dead_peer_reply(self) -> web.Response:
        self.log.error(
            "RuntimeError: Worker failed with error 'Connection closed by peer': a remote "
            f"worker terminated ({self.group.broken})",
            "core.py:1512",
        )
        self.log.error(
            "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. "
            "See stack trace (above) for the root cause.",
            "async_llm.py:906",
        )
        self.engine_dead = True
        if self._control is not None:
            asyncio.get_running_loop().call_later(0.5, self._control.stop, 0)
        return self._error(
            500, "EngineCore encountered an issue. See stack trace (above) for the root cause."
        )

    def _engine_died(self) -> None:
        self.engine_dead = True

    async def _health(self, request: web.Request) -> web.Response:
        if self.engine_dead:
            return web.Response(status=503)
        if self.settings.engine == "sglang" and not self.warm:
            return web.Response(status=503)
        return web.Response(status=200)

    async def _models(self, request: web.Request) -> web.Response:
        owner = "vllm" if self.settings.engine == "vllm" else "sglang"
        created = int(time.time())
        data = []
        for name in self.settings.served_model_names:
            card: dict[str, Any] = {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": owner,
                "root": self.settings.model,
                "parent": None,
                "max_model_len": self.settings.max_model_len,
            }
            if self.settings.engine == "vllm":
                card["permission"] = [_vllm_permission(created)]
            data.append(card)
        return web.json_response({"object": "list", "data": data})

    async def _metrics(self, request: web.Request) -> web.Response:
        text = self.metrics.render(self.settings.engine, self.settings.served_model_names[0])
        return web.Response(
            text=text,
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": self.settings.version})

    async def _load(self, request: web.Request) -> web.Response:
        return web.json_response({"server_load": self.metrics.running + self.metrics.waiting})

    async def _model_info(self, request: web.Request) -> web.Response:
        s = self.settings
        return web.json_response(
            {
                "model_path": s.model,
                "tokenizer_path": s.model,
                "is_generation": True,
                "preferred_sampling_params": None,
                "weight_version": "default",
                "has_image_understanding": False,
                "has_audio_understanding": False,
                "model_type": None,
                "architectures": None,
            }
        )

    async def _server_info(self, request: web.Request) -> web.Response:
        s = self.settings
        info: dict[str, Any] = {
            **s.server_args,
            "host": s.host,
            "port": self._control.ports.get("http", s.port) if self._control else s.port,
            "served_model_name": s.served_model_names[0],
            "context_length": s.max_model_len,
            "enable_metrics": s.enable_metrics,
            "disaggregation_mode": s.disaggregation_mode or "null",
            "disaggregation_bootstrap_port": s.bootstrap_port,
            "version": s.version,
            "status": "Up" if self.warm else "Starting",
            "internal_states": [
                {
                    "last_gen_throughput": 0.0,
                    "max_total_num_tokens": self.behaviour.kv_capacity_tokens,
                }
            ],
        }
        return web.json_response(info)

    async def _flush_cache(self, request: web.Request) -> web.Response:
        return web.Response(text="Cache flushed.\nPlease check backend logs for more details.")

    # ----------------------------------------------------------------- generation
    def _error(self, status: int, message: str, param: str | None = None) -> web.Response:
        return web.json_response(
            error_body(self.settings.engine, status, message, param), status=status
        )

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RequestError("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        return body

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._openai(request, chat=False)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._openai(request, chat=True)

    async def _openai(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        arrival = asyncio.get_running_loop().time()
        try:
            body = await self._body(request)
            gen = parse_openai(
                body,
                chat=chat,
                max_model_len=self.settings.max_model_len,
                eos_tokens=self.behaviour.eos_tokens,
            )
        except RequestError as error:
            return self._error(400, str(error), error.param)
        names = self.settings.served_model_names
        if self.group.broken is not None and self.settings.engine == "vllm":
            # /health said 200 (as vLLM's does); the request meets the lost peer, the engine
            # dies of it, the request gets a 500 and the API server exits 0 right after.
            return self._dead_peer_reply()
        if gen.model is not None and self.settings.engine == "vllm" and gen.model not in names:
            return self._error(404, f"The model `{gen.model}` does not exist.", "model")
        builder = ResponseBuilder(self.settings.engine, chat, gen.model or names[0], gen)
        transfer = body.get("kv_transfer_params")
        # A decode instance handed the prefill's KV blocks does not prefill the prompt again.
        remote = isinstance(transfer, dict) and bool(transfer.get("do_remote_prefill"))
        if not gen.stream:
            async with self._running(gen, arrival) as start:
                await self._produce(gen, start, arrival, remote_prefill=remote)
            result = builder.full_response(output_text(gen.output_tokens, gen.seed))
            if self.settings.engine == "vllm" and isinstance(transfer, dict):
                result["kv_transfer_params"] = self._kv_transfer_answer(transfer)
            return web.json_response(result)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)

        async def emit(index: int) -> None:
            if chat and index == 0:
                await response.write(sse(builder.role_chunk()))
            token = output_token(index, gen.seed)
            await response.write(sse(builder.token_chunk(token, index, index + 1)))

        async with self._running(gen, arrival) as start:
            await self._produce(gen, start, arrival, emit, remote_prefill=remote)
            if gen.include_usage:
                await response.write(sse(builder.usage_chunk()))
            await response.write(sse("[DONE]"))
        await response.write_eof()
        return response

    def _kv_transfer_answer(self, transfer: dict[str, Any]) -> dict[str, Any] | None:
        """A prefill instance (do_remote_decode) tells the proxy where its KV blocks are."""
        if not transfer.get("do_remote_decode"):
            return None
        return {
            "do_remote_prefill": True,
            "do_remote_decode": False,
            "remote_engine_id": f"sim-{self._engine_id}",
            "remote_block_ids": [0],
            "remote_host": self.settings.host,
            "remote_port": 5600,
        }

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        """SGLang's native API: {"text"|"input_ids", "sampling_params", "stream"}."""
        arrival = asyncio.get_running_loop().time()
        try:
            body = await self._body(request)
            gen = self._native_request(body)
        except RequestError as error:
            return self._error(400, str(error), error.param)
        rid = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        if not gen.stream:
            async with self._running(gen, arrival) as start:
                await self._produce(gen, start, arrival)
            text = output_text(gen.output_tokens, gen.seed)
            return web.json_response(
                native_chunk(rid, text, gen, gen.output_tokens, True, loop.time() - arrival)
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def emit(index: int) -> None:
            done = index == gen.output_tokens - 1
            chunk = native_chunk(
                rid, output_text(index + 1, gen.seed), gen, index + 1, done, loop.time() - arrival
            )
            await response.write(sse(chunk))

        async with self._running(gen, arrival) as start:
            await self._produce(gen, start, arrival, emit)
            await response.write(sse("[DONE]"))
        await response.write_eof()
        return response

    def _native_request(self, body: dict[str, Any]) -> GenerationRequest:
        params = body.get("sampling_params") or {}
        if not isinstance(params, dict):
            raise RequestError("'sampling_params' must be an object", "sampling_params")
        max_new = params.get("max_new_tokens", SGLANG_DEFAULT_MAX_NEW_TOKENS)
        openai_like: dict[str, Any] = {
            "max_tokens": max_new,
            "min_tokens": params.get("min_new_tokens"),
            "ignore_eos": params.get("ignore_eos", False),
            "stream": body.get("stream", False),
        }
        if "input_ids" in body:
            openai_like["prompt"] = body["input_ids"]
        else:
            openai_like["prompt"] = body.get("text")
        return parse_openai(
            openai_like,
            chat=False,
            max_model_len=self.settings.max_model_len,
            eos_tokens=self.behaviour.eos_tokens,
        )

    @asynccontextmanager
    async def _running(self, gen: GenerationRequest, arrival: float) -> AsyncIterator[float]:
        """Hold a scheduler slot (queueing when full); yields the time the request started."""
        m = self.metrics
        m.waiting += 1
        acquired = False
        queued = self._slots is not None and self._slots.locked()
        try:
            if self._slots is not None:
                await self._slots.acquire()
                acquired = True
        finally:
            m.waiting -= 1
        # Timing counts from the request's arrival (reading its body is part of the TTFT a
        # client sees), or from the moment a queued request got its slot.
        start = asyncio.get_running_loop().time() if queued else arrival
        m.queue_time.observe(start - arrival)
        m.running += 1
        m.kv_tokens_in_use += gen.prompt_tokens
        try:
            yield start
        finally:
            m.running -= 1
            m.kv_tokens_in_use -= gen.prompt_tokens
            if acquired and self._slots is not None:
                self._slots.release()

    async def _produce(
        self,
        gen: GenerationRequest,
        start: float,
        arrival: float,
        emit: Emit | None = None,
        *,
        remote_prefill: bool = False,
    ) -> None:
        """Produce the tokens on schedule, calling `emit(index)` for each; keeps the metrics."""
        loop = asyncio.get_running_loop()
        m = self.metrics
        ttft = self.behaviour.ttft_ms / 1000.0
        tpot = self.behaviour.tpot_ms / 1000.0
        control = self._control
        generated = 0
        previous = start
        try:
            for index in range(gen.output_tokens):
                # Scheduled from the start, not from the previous token: no drift.
                delay = start + ttft + index * tpot - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if control is not None:
                    await control.hang_if_hung()
                now = loop.time()
                if index == 0:
                    m.prompt_tokens += gen.prompt_tokens
                    # Transferred KV covers the prompt but its last token, computed here.
                    local = min(1, gen.prompt_tokens) if remote_prefill else gen.prompt_tokens
                    m.prompt_by_source["local_compute"] += local
                    m.prompt_by_source["external_kv_transfer"] += gen.prompt_tokens - local
                    m.ttft.observe(now - arrival)
                else:
                    m.itl.observe(now - previous)
                previous = now
                generated += 1
                m.generation_tokens += 1
                m.kv_tokens_in_use += 1
                if emit is not None:
                    await emit(index)
            m.finished[gen.finish_reason] += 1
            m.e2e.observe(loop.time() - arrival)
            m.prompt_len.observe(gen.prompt_tokens)
            m.generation_len.observe(generated)
        except (asyncio.CancelledError, ConnectionError):
            m.finished["abort"] += 1
            raise
        finally:
            m.kv_tokens_in_use -= generated
