"""The defaults a checkpoint's config.json leaves to its configuration class.

The engines build a model's config through transformers (`AutoConfig`), so a field missing
from config.json takes the class default: Gemma 3's published config leaves `vocab_size`,
`max_position_embeddings` and its sliding pattern out. Importing transformers costs seconds,
so `scripts/gen_config_defaults.py` extracts the literal defaults of every configuration class
of one transformers release into `profiles/models/config-defaults/transformers-<version>.tsv`
(a header line, then `<model_type> TAB <JSON>` per class); the newest file is read here once
per process, only when a config is read, and only the asked model type's line is parsed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from orchestrator.resources import profiles_dir

DIRECTORY = "models/config-defaults"


def _version_key(path: Path) -> tuple[int, ...]:
    version = path.stem.removeprefix("transformers-")
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


@cache
def _text() -> str:
    directory = profiles_dir() / DIRECTORY
    files = sorted(directory.glob("transformers-*.tsv"), key=_version_key)
    return files[-1].read_text(encoding="utf-8") if files else ""


def source() -> str:
    """Where the defaults came from (the transformers release and its wheel's digest)."""
    text = _text()
    if not text:
        return ""
    return str(json.loads(text.partition("\n")[0]).get("source", ""))


@cache
def class_defaults(model_type: str) -> Mapping[str, Any]:
    """The literal defaults of the configuration class registered under `model_type`."""
    text = _text()
    start = text.find(f"\n{model_type}\t") if model_type else -1
    if start < 0:
        return {}
    start += len(model_type) + 2
    end = text.find("\n", start)
    found = json.loads(text[start : end if end >= 0 else None])
    return found if isinstance(found, dict) else {}


def with_defaults(config: Mapping[str, Any], parent_type: str = "") -> dict[str, Any]:
    """`config` with every field it leaves out filled from its class, as the engines see it.

    A `text_config` without a `model_type` is the wrapper's `<type>_text` class (Gemma 3).
    """
    model_type = str(config.get("model_type") or "")
    if not model_type and parent_type:
        model_type = f"{parent_type}_text"
    defaults = class_defaults(model_type)
    if not defaults:
        return dict(config)
    merged = dict(defaults)
    merged.update(config)
    merged.setdefault("model_type", model_type)
    return merged


def filled_fields(config: Mapping[str, Any], parent_type: str = "") -> tuple[str, ...]:
    """The fields `with_defaults` takes from the class (for the profile's notes)."""
    model_type = str(config.get("model_type") or "") or (
        f"{parent_type}_text" if parent_type else ""
    )
    return tuple(sorted(key for key in class_defaults(model_type) if key not in config))
