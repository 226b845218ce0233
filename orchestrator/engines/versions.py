"""Engine releases `deploy` knows, read from their profiles: one file per release under
`profiles/engines/releases/` (image, port, feature gates, each with its `source`). The list
of versions is the list of files; the newest release of an engine is its default.

Each release also has a flag schema beside it (`profiles/engines/<engine>-<version>.json`);
a test keeps the two lists equal.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field

from orchestrator.base import Strict
from orchestrator.errors import CatalogError, InputError
from orchestrator.versioning import version_key

RELEASES_DIR = ("engines", "releases")


class Fact(Strict):
    """A value and where it comes from."""

    source: str = Field(min_length=1)


class Text(Fact):
    value: str


class Number(Fact):
    value: int


class Gate(Fact):
    value: bool


class EngineRelease(Strict):
    engine: Literal["vllm", "sglang"]
    version: str = Field(pattern=r"^\d+(\.\d+)*$")
    image: Text
    port: Number
    features: dict[str, Gate] = {}


def releases_dir() -> Path:
    from orchestrator.resources import profiles_dir

    return profiles_dir().joinpath(*RELEASES_DIR)


@cache
def releases() -> dict[str, dict[str, EngineRelease]]:
    """engine -> version -> release, newest first."""
    from orchestrator.profile_cache import cached_documents
    from orchestrator.profiles import load_profile, read_yaml

    directory = releases_dir()
    found: dict[str, dict[str, EngineRelease]] = {}
    for path, data in cached_documents(directory, read_yaml):
        release: EngineRelease = load_profile(path, data, EngineRelease)
        if path.stem != f"{release.engine}-{release.version}":
            raise CatalogError(
                f"{path}: names {release.engine} {release.version}",
                f"rename it {release.engine}-{release.version}.yaml",
            )
        found.setdefault(release.engine, {})[release.version] = release
    return {
        engine: dict(sorted(by.items(), key=lambda item: version_key(item[0]), reverse=True))
        for engine, by in found.items()
    }


def versions(engine: str) -> tuple[str, ...]:
    """Known versions of `engine`, newest first."""
    return tuple(releases().get(engine, {}))


def default_version(engine: str) -> str:
    return versions(engine)[0]


def resolve_version(engine: str, version: str | None) -> str:
    """Return a known version of `engine` (the newest when `version` is None)."""
    if engine not in releases():
        raise InputError(f"unknown engine {engine!r}", "use --engine vllm or --engine sglang")
    if version is None:
        return default_version(engine)
    wanted = version.removeprefix("v")
    if wanted not in releases()[engine]:
        known = ", ".join(versions(engine))
        raise InputError(
            f"no flag schema for {engine} {version}",
            f"use --engine-version with one of: {known}",
        )
    return wanted


def release(engine: str, version: str) -> EngineRelease:
    return releases()[engine][resolve_version(engine, version)]


def image_for(engine: str, version: str) -> str:
    return release(engine, version).image.value


def feature(engine: str, version: str, name: str) -> bool:
    """A feature gate of one release; a gate its profile does not state is refused."""
    gates = release(engine, version).features
    if name not in gates:
        raise CatalogError(
            f"the {engine} {version} release profile does not say whether it has {name}",
            f"add features.{name} (value and source) to {releases_dir()}/{engine}-{version}.yaml",
        )
    return gates[name].value
