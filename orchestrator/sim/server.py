"""Run a simulated program: in the foreground (the image's entry point) or in a thread (tests).

In-process API (for tests of other parts; see also the package docstring):

    from orchestrator.sim.server import start_in_thread, start_command_in_thread

    with start_in_thread("vllm", ttft_ms=20, tpot_ms=5) as sim:   # port 0: a free port
        sim.url          # "http://127.0.0.1:PORT"
    sim = start_command_in_thread(["vllm-router", "--worker-urls", a.url, b.url, "--port", "0"])
    sim.stop()           # returns the exit code

The faults (crash, hang) run as they would in a container, except that a crash stops the
thread's servers and records exit code 1 instead of ending the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from orchestrator.sim.control import Control, local_url
from orchestrator.sim.logs import SimLog, Sink, stdout_sink
from orchestrator.sim.settings import (
    Behaviour,
    EngineSettings,
    Faults,
    NginxSettings,
    Program,
    RouterSettings,
)


class _Runnable(Protocol):
    log: SimLog

    async def run(self, control: Control) -> None: ...
    async def close(self) -> None: ...
    def crash_lines(self) -> list[str]: ...
    def start_failure_line(self) -> str: ...


def _build(program: Program, behaviour: Behaviour, sink: Sink | None) -> _Runnable:
    if isinstance(program, EngineSettings):
        from orchestrator.sim.engine import EngineServer

        return EngineServer(program, behaviour, SimLog(program.engine, sink))
    from orchestrator.sim.proxy import NginxServer, RouterServer

    if isinstance(program, RouterSettings):
        return RouterServer(program, SimLog("router", sink))
    assert isinstance(program, NginxSettings)
    return NginxServer(program, SimLog("nginx", sink))


async def serve(program: Program, behaviour: Behaviour, control: Control, sink: Sink | None) -> int:
    """Run until stopped (exit code 0), crashed or failed to start (1)."""
    runnable = _build(program, behaviour, sink)
    faults = behaviour.faults
    if faults.exit_on_start:
        runnable.log.error(runnable.start_failure_line())
        control.bound.set()
        return 1
    if faults.fail and isinstance(program, EngineSettings):
        from orchestrator.sim.start_failures import failure_lines

        lines = failure_lines(faults.fail, program, behaviour)
        if lines is not None:
            for line in lines:
                runnable.log.error(line)
            control.bound.set()
            return 1
    watcher = asyncio.ensure_future(_fault_timer(faults, runnable, control))
    main = asyncio.ensure_future(runnable.run(control))
    stop = asyncio.ensure_future(control.wait_stop())
    try:
        done, _ = await asyncio.wait({main, stop}, return_when=asyncio.FIRST_COMPLETED)
        if main in done and main.exception() is not None:
            error = main.exception()
            runnable.log.error(f"{type(error).__name__}: {error}")
            control.exit_code = 1
    finally:
        watcher.cancel()
        stop.cancel()
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await main
        await runnable.close()
        control.bound.set()
    return control.exit_code


async def _fault_timer(faults: Faults, runnable: _Runnable, control: Control) -> None:
    events: list[tuple[float, str]] = []
    if faults.crash_after is not None:
        events.append((faults.crash_after, "crash"))
    if faults.hang_after is not None:
        events.append((faults.hang_after, "hang"))
    for at, what in sorted(events):
        delay = control.started + at - time.monotonic()
        if await control.sleep(delay):
            return
        if what == "hang":
            runnable.log.muted = True  # a hung process stops emitting
            control.hung.set()
        else:
            runnable.log.muted = False
            for line in runnable.crash_lines():
                runnable.log.error(line)
            runnable.log.muted = True  # a crashed process says nothing after its last words
            control.stop(exit_code=getattr(runnable, "crash_exit_code", 1))
            return


def run_foreground(program: Program, behaviour: Behaviour) -> int:
    """The image's entry point: serve until SIGTERM/SIGINT (exit 0) or a fault (exit 1)."""

    async def main() -> int:
        control = Control()
        control.own_process = True
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, control.stop)
        return await serve(program, behaviour, control, stdout_sink)

    try:
        code = asyncio.run(main())
    except OSError as error:  # e.g. the port is taken
        print(f"ERROR: {error}", flush=True)
        code = 1
    sys.stdout.flush()
    return code


class SimHandle:
    """A simulated program running in a background thread."""

    def __init__(self, program: Program, behaviour: Behaviour, echo: bool) -> None:
        self.program = program
        self.behaviour = behaviour
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self._control: Control | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._created = threading.Event()
        self._runnable_log: SimLog | None = None
        self._sink: Sink | None = stdout_sink if echo else None
        self._lines: list[str] = []
        self._thread = threading.Thread(target=self._main, name="deploy-sim", daemon=True)

    # -- public
    @property
    def host(self) -> str:
        return getattr(self.program, "host", "127.0.0.1")

    @property
    def port(self) -> int | None:
        return self._control.ports.get("http") if self._control else None

    @property
    def ports(self) -> dict[str, int]:
        return dict(self._control.ports) if self._control else {}

    @property
    def bootstrap_port(self) -> int | None:
        return self._control.ports.get("bootstrap") if self._control else None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("this simulated program serves no HTTP (headless) or has not bound")
        return local_url(self.host, self.port)

    @property
    def logs(self) -> list[str]:
        return list(self._lines)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def wait_ready(self, timeout: float) -> bool:
        """True when the program became ready (listening; SGLang: warm) within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            control = self._control
            if control is not None and control.ready.wait(0.02):
                return True
            if not self._thread.is_alive():
                return False
        return False

    def wait_exit(self, timeout: float) -> int | None:
        self._thread.join(timeout)
        return self.exit_code

    def stop(self, timeout: float = 10.0) -> int | None:
        loop, control = self._loop, self._control
        if loop is not None and control is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(control.stop)
        self._thread.join(timeout)
        return self.exit_code

    def __enter__(self) -> SimHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- thread
    def _collect(self, line: str) -> None:
        self._lines.append(line)
        if self._sink is not None:
            self._sink(line)

    def _main(self) -> None:
        async def main() -> int:
            self._loop = asyncio.get_running_loop()
            self._control = Control()
            self._created.set()
            return await serve(self.program, self.behaviour, self._control, self._collect)

        try:
            self.exit_code = asyncio.run(main())
        except BaseException as error:  # surfaced to the caller by _start
            self.error = error
            self.exit_code = 1
        finally:
            self._created.set()
            if self._control is not None:
                self._control.bound.set()

    def _start(self, wait_ready: bool, timeout: float) -> SimHandle:
        self._thread.start()
        self._created.wait(timeout)
        control = self._control
        if control is not None:
            control.bound.wait(timeout)
        if self.error is not None:
            raise self.error
        if wait_ready and not self.wait_ready(timeout):
            self.stop()
            tail = " | ".join(self._lines[-5:])
            if self.exit_code is not None:
                raise RuntimeError(
                    f"the simulated program exited with code {self.exit_code}: {tail}"
                )
            raise TimeoutError(f"the simulated program was not ready within {timeout:g} s: {tail}")
        return self


def start_command_in_thread(
    argv: Sequence[str],
    *,
    behaviour: Behaviour | None = None,
    env: Mapping[str, str] | None = None,
    wait_ready: bool = True,
    timeout: float | None = None,
    echo: bool = False,
) -> SimHandle:
    """Run the program that a real command line starts (engine, router or nginx) in a thread.

    `behaviour` defaults to the DEPLOY_SIM_* values of `env` (default: no variables, which
    means a 2 s load; pass a Behaviour for tests). With `wait_ready` the call returns once the
    program is ready, within `timeout` (default: load + warmup + 10 s).
    """
    from orchestrator.sim.argv import parse_command

    environment = dict(env or {})
    program = parse_command(list(argv), environment)
    if behaviour is None:
        engine = program.engine if isinstance(program, EngineSettings) else None
        behaviour = Behaviour.from_env(environment, engine)
    limit = (
        timeout if timeout is not None else behaviour.load_seconds + behaviour.warmup_seconds + 10
    )
    return SimHandle(program, behaviour, echo)._start(wait_ready, limit)


def start_in_thread(
    engine: str = "vllm",
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    model: str = "sim-model",
    served_model_name: str | None = None,
    ttft_ms: float = 20.0,
    tpot_ms: float = 5.0,
    load_seconds: float = 0.0,
    warmup_seconds: float = 0.0,
    fault: str | None = None,
    api_key: str | None = None,
    max_concurrency: int | None = None,
    eos_tokens: int | None = None,
    extra_args: Sequence[str] = (),
    wait_ready: bool = True,
    timeout: float | None = None,
    echo: bool = False,
) -> SimHandle:
    """Start a simulated vLLM or SGLang server on host:port (0: a free port) in a thread.

    SGLang gets `--enable-metrics` so that /metrics is there, as most deployments enable it.
    """
    if engine == "vllm":
        argv = ["vllm", "serve", model]
    elif engine == "sglang":
        argv = ["sglang", "serve", "--model-path", model, "--enable-metrics"]
    else:
        raise ValueError(f"engine must be 'vllm' or 'sglang', not {engine!r}")
    argv += ["--host", host, "--port", str(port)]
    if served_model_name:
        argv += ["--served-model-name", served_model_name]
    if api_key:
        argv += ["--api-key", api_key]
    argv += list(extra_args)
    behaviour = Behaviour(
        load_seconds=load_seconds,
        warmup_seconds=warmup_seconds,
        ttft_ms=ttft_ms,
        tpot_ms=tpot_ms,
        faults=Faults.parse(fault),
        max_concurrency=max_concurrency,
        **({"eos_tokens": eos_tokens} if eos_tokens else {}),
    )
    return start_command_in_thread(
        argv, behaviour=behaviour, wait_ready=wait_ready, timeout=timeout, echo=echo
    )


def main_from_argv(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """`python3 -m orchestrator.sim <real command line...>`."""
    from orchestrator.sim.argv import parse_command
    from orchestrator.sim.settings import SimConfigError

    environment = os.environ if env is None else env
    try:
        program = parse_command(list(argv), environment)
        engine = program.engine if isinstance(program, EngineSettings) else None
        behaviour = Behaviour.from_env(environment, engine)
    except SimConfigError as error:
        message = str(error)
        if message.startswith("nginx: "):  # nginx prints its [emerg] line and exits 1
            print(message, file=sys.stderr, flush=True)
            return 1
        print(f"error: {message}", file=sys.stderr, flush=True)
        return 2  # the engines' argument parsers exit 2
    return run_foreground(program, behaviour)
