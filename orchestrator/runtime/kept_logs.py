"""Log lines of services that failed to start, kept in the state directory
(`logs/NAME/SERVICE.log`) after their containers are removed, so `deploy logs` can still show
them. Secrets are masked before the lines get here (`docker_ops.log_tail`)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.state import StateStore, validate_name


def directory(store: StateStore, name: str) -> Path:
    return store.directory / "logs" / validate_name(name)


def keep(store: StateStore, name: str, service: str, lines: list[str]) -> Path:
    from orchestrator.files import write_atomically

    text = "".join(f"{line}\n" for line in lines)
    return write_atomically(directory(store, name) / f"{service}.log", text)


def kept(store: StateStore, name: str) -> dict[str, list[str]]:
    folder = directory(store, name)
    if not folder.is_dir():
        return {}
    return {
        path.stem: path.read_text(encoding="utf-8", errors="replace").splitlines()
        for path in sorted(folder.glob("*.log"))
    }


def forget(store: StateStore, name: str) -> None:
    import shutil

    shutil.rmtree(directory(store, name), ignore_errors=True)
