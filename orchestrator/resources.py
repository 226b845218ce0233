"""Where the data that ships with the package lives.

In a wheel, `profiles/` and `templates/` are copied under `orchestrator/_data/`; in a source
checkout (editable install, tests) they sit beside the package at the repository root.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    """Return the directory holding `profiles` or `templates`."""
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the package data directory {name!r} is missing from this install")


def profiles_dir() -> Path:
    return data_dir("profiles")


def templates_dir() -> Path:
    return data_dir("templates")
