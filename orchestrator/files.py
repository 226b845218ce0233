"""Directories replaced whole: built in a temporary sibling, then renamed into place.

A render that fails half-way (a full disk, a read-only file system, a permission) leaves the
previous render exactly as it was and no partial file behind; any OS error becomes one line
naming the path and the cause (exit 2). Files in the old directory that the new build does not
write (a filled-in `.env`, the user's notes) are carried into the new one as hard links (copies
across devices), so nothing of the user's is lost and the old tree stays intact until the swap.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TypeVar

from orchestrator.errors import InputError

T = TypeVar("T")


_HINTS = {
    errno.ENOSPC: "free some space, or write elsewhere",
    errno.EDQUOT: "free some space, or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "check the permissions of the directory, or write elsewhere",
    errno.EPERM: "check the permissions of the directory, or write elsewhere",
    errno.ENAMETOOLONG: "use a shorter path or name",
}


def os_error(error: OSError, shown: Callable[[str], str] = str) -> InputError:
    """One line from an OSError: the path (as the user knows it), the cause and a fix."""
    cause = error.strerror or str(error)
    path = shown(os.fsdecode(error.filename)) if error.filename is not None else None
    where = f"cannot write {path}" if path else "cannot write the files"
    hint = _HINTS.get(error.errno or 0, "check the path and its permissions")
    return InputError(f"{where}: {cause}", hint)


def resolve_target(target: Path) -> Path:
    """The directory to replace. A symlink to a directory is followed (the link stays); a
    dangling one, or a path under a file, is refused in one line."""
    try:
        return _resolve(Path(os.path.abspath(target)))
    except OSError as error:  # a name over NAME_MAX, a loop of links, an unreadable parent
        raise os_error(error) from None


def _resolve(target: Path) -> Path:
    if target.is_symlink():
        if not target.exists():
            raise InputError(
                f"{target} is a symbolic link to {os.readlink(target)}, which does not exist",
                "create the directory it points to, remove the link, or pass another --out",
            )
        target = Path(os.path.realpath(target))
    for parent in target.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise InputError(
                    f"cannot write {target}: {parent} is not a directory",
                    "pass a path under a directory",
                )
            break
    if target.exists() and not target.is_dir():
        raise InputError(f"{target} is not a directory", "pass a new or empty directory to --out")
    return target


def replace_directory(
    target: Path,
    build: Callable[[Path], T],
    carry: Callable[[PurePosixPath], bool],
) -> T:
    """Run `build(stage)` on a fresh sibling of `target`, carry over the old directory's files
    for which `carry(relative path)` is true, and rename the result to `target`."""
    target = resolve_target(target)

    # Temporary siblings are named `.NAME.<random>.new|.old`: errors name `target` instead.
    sibling = re.compile(re.escape(str(target.parent / f".{target.name}.")) + r"[^/]*")

    def shown(path: str) -> str:
        return sibling.sub(lambda _: str(target), path)

    stage: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".new", dir=target.parent))
        result = build(stage)
        if target.is_dir():
            _carry_over(target, stage, carry)
        _set_mode(stage, target)
        _swap(stage, target)
        stage = None
        return result
    except OSError as error:
        raise os_error(error, shown) from None
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)


def _carry_over(old: Path, new: Path, carry: Callable[[PurePosixPath], bool]) -> None:
    for root, dirs, files in os.walk(old):
        here = Path(root)
        relative_dir = here.relative_to(old)
        if relative_dir != Path(".") and not dirs and not files:
            (new / relative_dir).mkdir(parents=True, exist_ok=True)  # the user's empty folder
        for name in [*files, *(d for d in dirs if (here / d).is_symlink())]:
            relative = PurePosixPath((relative_dir / name).as_posix())
            if not carry(relative) or (new / relative).exists():
                continue
            source, destination = here / name, new / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                os.symlink(os.readlink(source), destination)
                continue
            try:
                os.link(source, destination)
            except OSError:
                shutil.copy2(source, destination)


def _set_mode(stage: Path, target: Path) -> None:
    """mkdtemp makes 0700; the result gets the old directory's mode, or the umask's default."""
    if target.is_dir():
        mode = target.stat().st_mode & 0o7777
    else:
        umask = os.umask(0o022)
        os.umask(umask)
        mode = 0o777 & ~umask
    os.chmod(stage, mode)


def _swap(stage: Path, target: Path) -> None:
    if not target.exists():
        os.rename(stage, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.rmdir(old)
    os.rename(target, old)
    try:
        os.rename(stage, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_atomically(path: Path, data: str | bytes, *, durable: bool = False) -> Path:
    """Write one file whole or not at all: a temporary file in the same directory, renamed
    over `path`, so a reader never sees half of it and a crash leaves the old one. `durable`
    also fsyncs the file and the directory (state a restart must find). The one atomic file
    write of the package; OS errors are raised as they are, for the caller's wording."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable (best effort: some file systems cannot open a directory)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
