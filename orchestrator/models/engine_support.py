"""Which architectures each pinned engine version loads.

The lists under `profiles/engines/architectures/` were extracted from the engines' released
wheels by `scripts/gen_model_architectures.py` (vLLM's model registry, SGLang's model
classes); each file records the wheel it came from.
"""

from __future__ import annotations

import json
import re
from functools import cache

from orchestrator.errors import CatalogError, PlanError
from orchestrator.resources import profiles_dir
from orchestrator.schema import ModelProfile

_DIRECTORY = ("engines", "architectures")


@cache
def architectures(engine: str, version: str) -> frozenset[str] | None:
    """Architecture names `engine` `version` registers, or None when no list was extracted."""
    path = profiles_dir().joinpath(*_DIRECTORY, f"{engine}-{version}.json")
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return frozenset(str(name) for name in data["architectures"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CatalogError(f"{path}: unreadable architecture list ({error})") from error


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def versions_with_lists(engine: str) -> list[str]:
    directory = profiles_dir().joinpath(*_DIRECTORY)
    found = [
        path.stem[len(engine) + 1 :]
        for path in directory.glob(f"{engine}-*.json")
        if path.stem[len(engine) + 1 :][:1].isdigit()
    ]
    return sorted(found, key=_version_key)


def check_loadable(model: ModelProfile, engine: str, version: str) -> list[str]:
    """PlanError when another pinned version loads the architecture and this one does not.

    An architecture no pinned version registers is left to the engine's Transformers backend
    (a warning), so a new model family still plans.
    """
    known = architectures(engine, version)
    if known is None or model.architecture in known or model.architecture == "unknown":
        return []
    able = [
        f"{name} {other}"
        for name in ("vllm", "sglang")
        for other in versions_with_lists(name)
        if model.architecture in (architectures(name, other) or frozenset())
    ]
    if not able:
        return [
            f"no pinned vLLM or SGLang version registers {model.architecture}: {engine} "
            "falls back to its Transformers backend (add --engine-arg --trust-remote-code "
            "if the repo ships its own modelling code)"
        ]
    raise PlanError(
        f"{engine} {version} cannot load {model.architecture} ({model.hf_id})",
        f"versions that load it: {', '.join(able)}; choose one with --engine/--engine-version",
    )
