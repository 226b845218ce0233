"""Reading the YAML profiles under `profiles/` (models, GPUs, clusters, recipes): one reader,
one error shape (the file, the line or field, and the fix), shared by every catalog."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.errors import CatalogError


def read_yaml(path: Path) -> Any:
    # PyYAML is imported here, not at the top: a run whose catalog comes from the parsed-YAML
    # cache (`orchestrator.profile_cache`) never loads it (~10 ms of every `deploy` run).
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogError(f"cannot read {path}: {error.strerror}") from error
    # The C loader is ~10x faster than the pure-Python one; fall back when libyaml is absent.
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise CatalogError(
            f"{path}:{where}: invalid YAML ({error.problem})", "fix the syntax of that file"
        ) from error
    except yaml.YAMLError as error:
        raise CatalogError(
            f"{path}: invalid YAML ({error})", "fix the syntax of that file"
        ) from error


def validation_message(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"field {field!r}: {first['msg']}"


def load_profile(path: Path, data: Any, schema: type[Any]) -> Any:
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        raise CatalogError(
            f"{path}: {validation_message(error)}", "fix that field of the profile"
        ) from error


def parsed_documents(directory: Path) -> Iterable[tuple[Path, Any]]:
    # Lazily: a file is parsed only after the ones before it validated.
    return ((path, read_yaml(path)) for path in sorted(directory.glob("*.yaml")))
