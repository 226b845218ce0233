"""One `deploy up` (or `down`) per deployment name at a time: an exclusive `flock` on
`locks/NAME.lock` in the state directory. The kernel drops the lock when the holder exits,
however it exits, so a crashed `up` never leaves a stale lock behind."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from orchestrator.errors import RuntimeFailure
from orchestrator.state import StateStore, validate_name


class DeploymentBusy(RuntimeFailure):
    """Another `deploy` command holds this deployment's lock."""


@contextlib.contextmanager
def deployment_lock(store: StateStore, name: str, command: str = "deploy up") -> Iterator[None]:
    directory = store.directory / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{validate_name(name)}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise DeploymentBusy(
                f"another `deploy` command is working on {name} right now (pid {holder})",
                f"wait for it to finish, then run `{command}` again",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
