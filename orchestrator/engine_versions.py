"""Engine versions `deploy` knows, their images, and the default (newest pinned) version."""

from __future__ import annotations

from orchestrator.errors import InputError

# Versions with a flag schema under profiles/engines/, newest first.
VERSIONS: dict[str, tuple[str, ...]] = {
    "vllm": ("0.33.0", "0.32.0"),
    "sglang": ("0.5.23", "0.5.22", "0.5.21", "0.5.19"),
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


# Tags that differ from the pattern. SGLang images ship CUDA 13 since 0.5.20; the CUDA 12 build
# of 0.5.19 is the last one for R535-R570 drivers ("CUDA 12 images (`-cu12` / `-cu129`) are no
# longer published; `lmsysorg/sglang:v0.5.19-cu129` is the last CUDA 12 tag", SGLang's
# installation docs).
IMAGE_TAGS: dict[tuple[str, str], str] = {
    ("sglang", "0.5.19"): "lmsysorg/sglang:v0.5.19-cu129",
}


def image_for(engine: str, version: str) -> str:
    return IMAGE_TAGS.get((engine, version)) or IMAGES[engine].format(version=version)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())
