"""Turn a built `argparse.ArgumentParser` into the JSON flag schema `orchestrator.engines.flags` reads.

Pure introspection of argparse objects: no engine import happens here, so the same code serves
the real engines and the small fake parser of the tests.
"""

from __future__ import annotations

import argparse
import enum
import json
import re
from typing import Any

SCHEMA_FORMAT = 1
_REPR_LIMIT = 120
_HELP_LIMIT = 200
# SGLang marks retired flags with `Deprecated*Action` classes; vLLM with a help suffix.
_DEPRECATED_HELP = re.compile(
    r"\(deprecated|\[deprecated\]|^deprecated|\bis deprecated\b|\bwill be removed\b", re.IGNORECASE
)


def dump_parser(
    parser: argparse.ArgumentParser,
    *,
    engine: str,
    version: str,
    entry_point: str,
    generated_by: str,
    features: list[str] | None = None,
) -> dict[str, Any]:
    """Return the schema of every option and positional argument `parser` accepts."""
    registered = _option_strings_by_action(parser)
    groups = _group_titles(parser)
    options = []
    positionals = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if not action.option_strings:
            positionals.append(_positional(action))
            continue
        options.append(_option(action, registered.get(id(action), []), groups.get(id(action))))
    return {
        "format": SCHEMA_FORMAT,
        "engine": engine,
        "version": version,
        "entry_point": entry_point,
        "generated_by": generated_by,
        "parser": {
            "class": type(parser).__name__,
            "allow_abbrev": bool(parser.allow_abbrev),
            "features": sorted(features or []),
        },
        "option_count": len(options),
        "positionals": positionals,
        "options": options,
    }


def _option_strings_by_action(parser: argparse.ArgumentParser) -> dict[int, list[str]]:
    """Every string the parser answers to, per action, including ones hidden from help."""
    by_action: dict[int, list[str]] = {}
    for option_string, action in parser._option_string_actions.items():
        by_action.setdefault(id(action), []).append(option_string)
    return by_action


def _group_titles(parser: argparse.ArgumentParser) -> dict[int, str]:
    titles: dict[int, str] = {}
    for group in parser._action_groups:
        for action in group._group_actions:
            if group.title and group.title not in ("options", "optional arguments"):
                titles[id(action)] = group.title
    return titles


def _option(action: argparse.Action, registered: list[str], group: str | None) -> dict[str, Any]:
    visible = list(action.option_strings)
    hidden = [flag for flag in registered if flag not in visible]
    boolean = _is_boolean(action)
    entry: dict[str, Any] = {
        "flags": visible,
        "dest": action.dest,
        "action": type(action).__name__,
        "nargs": action.nargs,
        "takes_value": action.nargs != 0,
        "boolean": boolean,
        "choices": _choices(action),
        **_default(action.default),
        "help": first_sentence(action.help),
    }
    if hidden:
        entry["hidden_flags"] = hidden
    negative = _negative_flags(action, visible + hidden)
    if negative:
        entry["negative_flags"] = negative
    json_kind = _json_kind(action)
    if json_kind:
        entry["json"] = json_kind
    value_kind = _value_kind(action) if entry["takes_value"] and not json_kind else None
    if value_kind:
        entry["value"] = value_kind
        words = _special_words(action)
        if words:
            entry["value_words"] = words
    deprecation = _deprecation(action)
    if deprecation is not None:
        entry["deprecated"] = True
        if deprecation:
            entry["deprecation"] = deprecation
    replacement = getattr(action, "new_flag", None)
    if isinstance(replacement, str) and replacement:
        entry["replacement"] = replacement
    removed = getattr(action, "error_message", None)
    if isinstance(removed, str) and removed:
        # The flag parses but stops the launch with this message.
        entry["error_on_use"] = first_sentence(removed)
    if group:
        entry["group"] = group
    if action.required:
        entry["required"] = True
    return entry


def _positional(action: argparse.Action) -> dict[str, Any]:
    return {
        "dest": action.dest,
        "nargs": action.nargs,
        "choices": _choices(action),
        **_default(action.default),
        "help": first_sentence(action.help),
    }


def _is_boolean(action: argparse.Action) -> bool:
    if isinstance(action, argparse.BooleanOptionalAction):
        return True
    if action.nargs == 0:
        return True
    return isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))


def _negative_flags(action: argparse.Action, flags: list[str]) -> list[str]:
    """Flags that turn a boolean off (`--no-x`, vLLM 0.33's `--disable-x` pairs)."""
    if isinstance(action, argparse._StoreFalseAction):
        return list(flags)
    if not isinstance(action, argparse.BooleanOptionalAction):
        return []
    explicit = getattr(action, "negative_option_strings", None)
    if explicit is not None:
        return sorted(flag for flag in flags if flag in explicit)
    return [flag for flag in flags if flag.startswith("--no-")]


def _choices(action: argparse.Action) -> list[Any] | None:
    if action.choices is None or isinstance(action.choices, str):
        return None
    values = [_jsonable_choice(choice) for choice in action.choices]
    if isinstance(action.choices, (set, frozenset)):
        values.sort(key=str)
    return values


def _jsonable_choice(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _default(value: Any) -> dict[str, Any]:
    if value is argparse.SUPPRESS:
        return {"default": None, "default_suppressed": True}
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, (set, frozenset, tuple)):
        value = sorted(value, key=str) if isinstance(value, (set, frozenset)) else list(value)
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        return {"default": _short(repr(value), _REPR_LIMIT), "default_is_repr": True}
    if len(text) > 4 * _REPR_LIMIT:
        return {"default": _short(repr(value), _REPR_LIMIT), "default_is_repr": True}
    return {"default": value}


def _json_kind(action: argparse.Action) -> str | None:
    """'object' when the value must be a JSON object, 'object_or_string' when either is taken.

    vLLM wraps its converters (`optional_type(parse_dataclass)`, `parse_type(json.loads)`), so
    the closures are searched for the converter that does the work.
    """
    for function in _converters(action.type, depth=0):
        name = getattr(function, "__name__", "")
        if name == "union_dict_and_str":
            return "object_or_string"
        if function is json.loads or name == "parse_dataclass":
            return "object"
    help_text = action.help if isinstance(action.help, str) else ""
    if "valid JSON string" in help_text:
        return "object"
    return None


# Sample words fed to an option's converter to learn what it takes: the parser itself is the
# authority, so a value deploy refuses is one the engine's own parser would refuse at start.
_PROBES = {"word": "abc", "int": "7", "fraction": "0.5", "suffixed": "2k"}


def _value_kind(action: argparse.Action) -> str | None:
    """'int', 'float' or 'human_int' (an int that also takes k/m/g suffixes) when the converter
    refuses plain words; None for text, or when the converter cannot be probed."""
    convert = action.type
    if convert is None or isinstance(convert, str) or not callable(convert):
        return None
    accepted = {}
    for name, word in _PROBES.items():
        try:
            result = convert(word)
        except Exception:  # argparse turns any converter error into a usage error
            accepted[name] = False
            continue
        accepted[name] = result is not None or name == "word"
    if accepted["word"]:
        return None
    if accepted["int"] and accepted["suffixed"]:
        return "human_int"
    if accepted["int"] and accepted["fraction"]:
        return "float"
    if accepted["int"]:
        return "int"
    return None


# Words a numeric converter may take besides numbers (vLLM: "auto", and "None" for optionals).
_SPECIAL_WORDS = ("", "None", "none", "auto")


def _special_words(action: argparse.Action) -> list[str]:
    accepted = []
    for word in _SPECIAL_WORDS:
        try:
            action.type(word)  # type: ignore[misc]
        except Exception:
            continue
        accepted.append(word)
    return accepted


def _converters(function: Any, depth: int) -> list[Any]:
    if function is None or depth > 4:
        return []
    found = [function]
    for cell in getattr(function, "__closure__", None) or ():
        try:
            content = cell.cell_contents
        except ValueError:
            continue
        if callable(content):
            found += _converters(content, depth + 1)
    return found


def _deprecation(action: argparse.Action) -> str | None:
    """None when not deprecated; else the deprecation note ('' when there is none)."""
    if type(action).__name__.startswith("Deprecated"):
        return first_sentence(getattr(action, "error_message", None) or action.help or "")
    if getattr(action, "deprecated", False):
        return ""
    help_text = action.help if isinstance(action.help, str) else ""
    if help_text and _DEPRECATED_HELP.search(help_text[:200]):
        return first_sentence(help_text)
    return None


def first_sentence(text: Any) -> str:
    if not isinstance(text, str) or text == argparse.SUPPRESS:
        return ""
    flat = " ".join(text.split())
    match = re.match(r"(.+?[.!?])(\s|$)", flat)
    sentence = match.group(1) if match else flat
    return _short(sentence, _HELP_LIMIT)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_json(schema: dict[str, Any]) -> str:
    """Serialise with one option per line: small files whose diffs read flag by flag."""
    head = {key: value for key, value in schema.items() if key not in ("options", "positionals")}
    lines = ["{"]
    for key, value in head.items():
        lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
    for key in ("positionals", "options"):
        items = schema.get(key, [])
        lines.append(f"  {json.dumps(key)}: [")
        rows = [f"    {json.dumps(item, ensure_ascii=False)}" for item in items]
        lines.append(",\n".join(rows))
        lines.append("  ]," if key == "positionals" else "  ]")
    lines.append("}")
    return "\n".join(line for line in lines if line) + "\n"
