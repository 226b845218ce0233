"""How a multi-rank engine lives and dies, as real vLLM does it (read from vLLM's CPU build run
on two containers, and its source):

- rank 0 hosts the group's rendezvous. torch's TCPStore (`--master-port`, SGLang's
  `--dist-init-addr`) stays open for the instance's life and every follower holds a
  connection to it. vLLM's DP coordinator port (`--data-parallel-rpc-port`) serves only the
  start-up handshake and is closed once the engine is up;
- a follower that dies leaves rank 0's `/health` at 200; the next request fails with a 500
  (rank 0's collective meets the lost peer, its engine dies of it) and rank 0's API server
  then exits with code 0;
- a follower whose leader died does not exit: it logs and waits, forever;
- inside a container, each engine core is its own process (`VLLM::EngineCore`); when one
  dies the API server logs the death, answers `/health` with 503 for a few seconds and exits
  with code 0 (not a failure code, so Docker's `on-failure` policy never restarts it).

The engine-core processes are started only when the simulator is the container's program
(`run_foreground`), never in a test's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import Callable

from orchestrator.sim.control import Control
from orchestrator.sim.logs import SimLog
from orchestrator.sim.settings import EngineSettings

HELLO = b"deploy-sim-rank\n"  # a follower's first bytes: peers' health checks send nothing
CONNECT_RETRY_S = 0.5
CHILD_POLL_S = 0.2
DEAD_HEALTH_S = 3.0  # vLLM answers /health with 503 this long before it exits

# The engine-core process: it only waits, under vLLM's process title.
_CORE = "import signal, sys; signal.pause()"


class GroupLink:
    """Rank 0's rendezvous server and followers, or a follower's link to its rank 0."""

    def __init__(self, settings: EngineSettings, log: SimLog) -> None:
        self.settings = settings
        self.log = log
        self.broken: str | None = None  # why requests fail now: a follower is gone
        self._server: asyncio.base_events.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._link: asyncio.StreamWriter | None = None  # a follower's connection to rank 0
        self._stopping = False

    # ----------------------------------------------------------------- rank 0
    async def serve(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._follower, sock=sock)

    async def _follower(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.readline()
            if first != HELLO:
                return  # a health check's connect-and-close
            if self.settings.rendezvous_closes:
                return  # the handshake is all a DP rank does here
            await reader.read()  # until the follower's connection ends
            if not self._stopping and self.broken is None:
                peer = writer.get_extra_info("peername")
                # vLLM logs nothing now: it notices at the next collective (a request).
                self.broken = f"peer {peer[0] if peer else '?'} is gone"
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def handshake_done(self) -> None:
        """vLLM closes the DP RPC port once the engines are up."""
        if self.settings.rendezvous_closes and self._server is not None:
            self._server.close()
            self._server = None

    # ----------------------------------------------------------------- followers
    def follow(self, control: Control) -> None:
        if self.settings.leader is not None:
            self._tasks.append(asyncio.ensure_future(self._follow(control)))

    async def _follow(self, control: Control) -> None:
        assert self.settings.leader is not None
        host, port = self.settings.leader
        while True:
            try:
                reader, writer = await asyncio.open_connection(host, port)
                break
            except OSError:
                if await control.sleep(CONNECT_RETRY_S):
                    return
        self._link = writer
        writer.write(HELLO)
        with contextlib.suppress(OSError):
            await writer.drain()
        if self.settings.rendezvous_closes:
            writer.close()
            return
        with contextlib.suppress(OSError):
            await reader.read()
        if control.stop_requested.is_set():
            return
        # Real followers neither exit nor recover: they wait on a collective that never ends.
        self.log.warning(
            f"Lost the connection to the rendezvous store at {host}:{port}; waiting for the "
            "group (this process does not exit by itself)",
            "parallel_state.py:1",
        )

    async def close(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        if self._link is not None:
            self._link.close()  # a stopped rank's peers see its connection end


class EngineCores:
    """The engine-core child processes (`VLLM::EngineCore`, or `VLLM::EngineCore_DP<n>` per
    local DP engine). When one dies, as in vLLM 0.32: the client logs the death and cleans
    up, the output handler fails with EngineDeadError, `/health` answers 503 for a few
    seconds, then uvicorn shuts down in order and the process exits with code 0."""

    def __init__(self, settings: EngineSettings, log: SimLog, on_death: Callable[[], None]) -> None:
        self.settings = settings
        self.log = log
        self.on_death = on_death
        self.children: list[subprocess.Popen[bytes]] = []
        self._watch: asyncio.Task[None] | None = None

    def start(self, control: Control) -> None:
        if self.settings.engine != "vllm":
            return
        count = max(1, self.settings.dp_local)
        for rank in range(count):
            title = "VLLM::EngineCore" if count == 1 else f"VLLM::EngineCore_DP{rank}"
            self.children.append(subprocess.Popen([sys.executable, "-c", _CORE, title]))
        self._watch = asyncio.ensure_future(self._watch_children(control))

    async def _watch_children(self, control: Control) -> None:
        while not await control.sleep(CHILD_POLL_S):
            if all(child.poll() is None for child in self.children):
                continue
            source = "core_client.py:817"
            self.log.warning(
                "[shutdown] MPClient: engine core exited unexpectedly; starting cleanup", source
            )
            self.log.info("[shutdown] MPClient: complete", "core_client.py:777")
            self.log.error("AsyncLLM output_handler failed.", "async_llm.py:906")
            self.log.error(
                "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. "
                "See stack trace (above) for the root cause.",
                "async_llm.py:906",
            )
            self.on_death()
            await control.sleep(DEAD_HEALTH_S)  # /health says 503 meanwhile
            control.stop(exit_code=0)
            return

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
        self.children.clear()
