"""YAML text for Kubernetes manifests: block style, every string a double-quoted scalar.

Strings go through `render.yaml_str` (JSON escapes, valid YAML for any text), so a value can
never turn into another type or break the document; keys are Kubernetes field names and label
keys, written plain when they are plain words.
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.targets.compose.render import yaml_str

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")


def _key(key: str) -> str:
    return key if _PLAIN_KEY.match(key) else yaml_str(key)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "null"
    return yaml_str(value)


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{_key(key)}:")
                lines += _lines(item, indent + 2)
            else:
                lines.append(f"{pad}{_key(key)}: {_empty_or_scalar(item)}")
        return lines
    for item in value:
        if isinstance(item, dict | list) and item:
            nested = _lines(item, indent + 2)
            lines.append(f"{pad}- {nested[0].lstrip()}")
            lines += nested[1:]
        else:
            lines.append(f"{pad}- {_empty_or_scalar(item)}")
    return lines


def _empty_or_scalar(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def yaml_document(value: dict[str, Any]) -> str:
    """One document, without the `---` separator, ending in a newline."""
    return "\n".join(_lines(value, 0)) + "\n"
