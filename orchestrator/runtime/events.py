"""Container deaths as they happen: one Docker events stream per endpoint.

The supervisor waits on `DeathWatch.wait` instead of sleeping between polls, so a crash is
seen at once (a restart starts well under a second after the death) rather than at the next
probe interval.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

from orchestrator.spec import LABEL_DEPLOYMENT


class DeathWatch:
    """Streams `die`/`oom` events of one deployment's containers from every endpoint."""

    def __init__(self, deployment: str, client_for: Callable[[str], Any]) -> None:
        self.deployment = deployment
        self.client_for = client_for
        self._events: queue.Queue[str] = queue.Queue()
        self._streams: list[Any] = []

    def start(self, endpoints: Iterable[str]) -> None:
        for endpoint in sorted(set(endpoints)):
            stream = self.client_for(endpoint).events(
                decode=True,
                filters={
                    "type": "container",
                    "event": ["die", "oom"],
                    "label": f"{LABEL_DEPLOYMENT}={self.deployment}",
                },
            )
            self._streams.append(stream)
            thread = threading.Thread(
                target=self._pump, args=(stream,), name=f"events-{endpoint}", daemon=True
            )
            thread.start()

    def wait(self, timeout: float) -> None:
        """Return when a container died or after `timeout` seconds, whichever comes first."""
        try:
            self._events.get(timeout=timeout)
        except queue.Empty:
            return
        while True:  # drain a burst (a group's ranks die together)
            try:
                self._events.get_nowait()
            except queue.Empty:
                return

    def stop(self) -> None:
        for stream in self._streams:
            with contextlib.suppress(Exception):
                stream.close()
        self._streams.clear()

    def _pump(self, stream: Any) -> None:
        try:
            for event in stream:
                self._events.put(str(event.get("id", "")))
        except Exception:  # the stream is closed on stop; the supervisor's poll still runs
            return
