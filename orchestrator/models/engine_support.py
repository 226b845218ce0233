"""Which architectures and quantization methods each pinned engine version loads.

The lists under `profiles/engines/architectures/` were extracted from the engines' released
wheels by `scripts/gen_model_architectures.py` (vLLM's model and quantization registries,
SGLang's model classes and quantization methods); each file records the wheel it came from.
"""

from __future__ import annotations

import json
from functools import cache

from orchestrator.errors import CatalogError, PlanError
from orchestrator.resources import profiles_dir
from orchestrator.schema import ModelProfile
from orchestrator.versioning import version_key

_DIRECTORY = ("engines", "architectures")


# A checkpoint's quant_method, and the loader names an engine may register it under (SGLang
# loads GPTQ/AWQ checkpoints through its Marlin configs; vLLM loads AutoRound through INC).
_METHOD_NAMES = {
    "gptq": ("gptq", "gptq_marlin"),
    "awq": ("awq", "awq_marlin"),
    "auto-round": ("auto-round", "inc"),
}


@cache
def _registry(engine: str, version: str) -> dict[str, frozenset[str]] | None:
    path = profiles_dir().joinpath(*_DIRECTORY, f"{engine}-{version}.json")
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {
            key: frozenset(str(name) for name in data.get(key, ()))
            for key in ("architectures", "quantization_methods")
        }
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise CatalogError(f"{path}: unreadable architecture list ({error})") from error


def architectures(engine: str, version: str) -> frozenset[str] | None:
    """Architecture names `engine` `version` registers, or None when no list was extracted."""
    registry = _registry(engine, version)
    return registry["architectures"] if registry is not None else None


def quantization_methods(engine: str, version: str) -> frozenset[str] | None:
    """`quant_method` values `engine` `version` loads, or None when no list was extracted."""
    registry = _registry(engine, version)
    return registry["quantization_methods"] or None if registry is not None else None


def _loads_method(method: str, engine: str, version: str) -> bool:
    known = quantization_methods(engine, version)
    return known is None or any(name in known for name in _METHOD_NAMES.get(method, (method,)))


def check_quantization(model: ModelProfile, engine: str, version: str) -> None:
    """PlanError when the checkpoint's quantization method is not one the version loads."""
    scheme = model.checkpoint.scheme
    if scheme is None or _loads_method(scheme.method, engine, version):
        return
    able = [
        f"{name} {other}"
        for name in ("vllm", "sglang")
        for other in versions_with_lists(name)
        if quantization_methods(name, other) is not None
        and _loads_method(scheme.method, name, other)
    ]
    hint = f"versions that load it: {', '.join(able)}" if able else "no pinned version loads it"
    raise PlanError(
        f"{engine} {version} cannot load {scheme.method} checkpoints ({model.hf_id})",
        f"{hint}; choose one with --engine/--engine-version, or another format of the model",
    )


def versions_with_lists(engine: str) -> list[str]:
    directory = profiles_dir().joinpath(*_DIRECTORY)
    found = [
        path.stem[len(engine) + 1 :]
        for path in directory.glob(f"{engine}-*.json")
        if path.stem[len(engine) + 1 :][:1].isdigit()
    ]
    return sorted(found, key=version_key)


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
