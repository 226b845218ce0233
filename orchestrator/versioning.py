"""Release versions as comparable tuples: the one version parser of the package.

`0.5.22` -> (0, 5, 22); `v0.33.0` -> (0, 33, 0); words between dots or dashes (`rc1`, `post1`)
count as -1, so they sort below the numbers of the same position. Used to order the engine
releases deploy knows, and to compare a release with a feature's first release.
"""

from __future__ import annotations

import re

_PARTS = re.compile(r"[.+-]")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(
        int(part) if part.isdigit() else -1 for part in _PARTS.split(version.strip().lstrip("v"))
    )


def at_least(version: str, since: str) -> bool:
    """`version` is `since` or a later release."""
    return version_key(version) >= version_key(since)
