"""The shipped model catalog: profiles under `profiles/models/`, found by alias, id or name.

Read once per process (`functools.cache`): the planner asks for a model many times while it
sweeps candidates, so every lookup after the first is a dict access.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from orchestrator.errors import CatalogError
from orchestrator.profile_cache import cached_documents
from orchestrator.profiles import load_profile, parsed_documents, read_yaml
from orchestrator.resources import profiles_dir
from orchestrator.schema import ModelProfile

LIST_HINT = "run `deploy profiles list` to see the catalog"


def load_models_from(
    directory: Path, documents: list[tuple[Path, Any]] | None = None
) -> dict[str, ModelProfile]:
    """Every model profile in `directory`, by canonical name (not cached; for tests and tools)."""
    models: dict[str, ModelProfile] = {}
    for path, data in parsed_documents(directory) if documents is None else documents:
        profile: ModelProfile = load_profile(path, data, ModelProfile)
        if profile.name in models:
            raise CatalogError(f"{path}: model name {profile.name!r} is defined twice")
        models[profile.name] = profile
    return models


@cache
def load_models() -> dict[str, ModelProfile]:
    """The shipped model catalog, by canonical name (parsed YAML cached across runs)."""
    directory = profiles_dir() / "models"
    return load_models_from(directory, cached_documents(directory, read_yaml))


# ---------------------------------------------------------------------------------------------
# Model lookup
# ---------------------------------------------------------------------------------------------


def _model_key(text: str) -> str:
    """Case-folded, with separators unified: 'Qwen3:32B' and 'qwen3_32b' both give 'qwen3-32b'."""
    return re.sub(r"[\s_:]+", "-", text.strip().lower())


def _model_keys(profile: ModelProfile) -> Iterable[str]:
    base = profile.hf_id.rsplit("/", 1)[-1]
    yield profile.name
    yield from profile.aliases
    yield profile.hf_id
    yield base
    for suffix in ("-instruct", "-instruct-2507", "-v0.1"):
        if base.lower().endswith(suffix):
            yield base[: -len(suffix)]


def build_model_index(models: Mapping[str, ModelProfile]) -> dict[str, str]:
    """Every accepted spelling -> canonical name. Raises when two models claim one spelling."""
    index: dict[str, str] = {}
    for profile in models.values():
        for spelling in _model_keys(profile):
            key = _model_key(spelling)
            owner = index.get(key)
            if owner is not None and owner != profile.name:
                raise CatalogError(
                    f"model alias {spelling!r} is claimed by both {owner!r} and {profile.name!r}",
                    "make aliases unique in profiles/models/",
                )
            index[key] = profile.name
    return index


@cache
def _model_index() -> dict[str, str]:
    return build_model_index(load_models())


def catalog_model(text: str) -> ModelProfile | None:
    """The catalog profile `text` names (alias, HF id or name, any case), or None."""
    name = _model_index().get(_model_key(text))
    return load_models()[name] if name is not None else None


def close_names(text: str, count: int = 3) -> list[str]:
    """Catalog names spelt like `text` (the repo name is compared too), best first."""
    import difflib  # only for a name that is not in the catalog

    index = _model_index()
    keys = [_model_key(text), _model_key(text.rsplit("/", 1)[-1])]
    close: list[str] = []
    for key in keys:
        close += difflib.get_close_matches(key, list(index), n=count, cutoff=0.6)
    return list(dict.fromkeys(index[key] for key in close))[:count]
