"""Engine versions `deploy` knows, their images, and the default (newest pinned) version."""

from __future__ import annotations

from orchestrator.errors import InputError

# Versions with a flag schema under profiles/engines/, newest first.
VERSIONS: dict[str, tuple[str, ...]] = {
    "vllm": ("0.33.0", "0.32.0"),
    "sglang": ("0.5.23", "0.5.22", "0.5.21"),
}

IMAGES: dict[str, str] = {
    "vllm": "vllm/vllm-openai:v{version}",
    "sglang": "lmsysorg/sglang:v{version}",
}


def default_version(engine: str) -> str:
    return VERSIONS[engine][0]


def resolve_version(engine: str, version: str | None) -> str:
    """Return a known version of `engine` (the newest when `version` is None)."""
    if engine not in VERSIONS:
        raise InputError(f"unknown engine {engine!r}", "use --engine vllm or --engine sglang")
    if version is None:
        return default_version(engine)
    wanted = version.removeprefix("v")
    if wanted not in VERSIONS[engine]:
        known = ", ".join(VERSIONS[engine])
        raise InputError(
            f"no flag schema for {engine} {version}",
            f"use --engine-version with one of: {known}",
        )
    return wanted


def image_for(engine: str, version: str) -> str:
    return IMAGES[engine].format(version=version)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())
