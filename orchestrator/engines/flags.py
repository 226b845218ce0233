"""Check a command line against the flag schema of the exact engine version it will run on.

Schemas live in `profiles/engines/<engine>-<version>.json` and were generated from each
engine's real argument parser (`scripts/gen_flag_schemas.py`). Engines: `vllm`, `sglang`,
`vllm-router`, `sglang-router`, `smg`.

The argv given to `check_argv` is what follows the entry point:

- vLLM: `vllm serve MODEL --flag ...` -> `["MODEL", "--flag", ...]` (the model is the one
  optional positional argument);
- SGLang: `python -m sglang.launch_server --model-path MODEL ...` -> `["--model-path", ...]`
  (no positional arguments; `--model-path` is required unless `--config` is given);
- routers: `vllm-router ...`, `python -m sglang_router.launch_router ...`, `smg launch ...`
  -> the arguments after those words.

The walk follows argparse for options: `--flag value`, `--flag=value`, booleans, nargs, and
vLLM's extras (underscores for dashes, `--json-flag.key value` sub-keys, `-O3`). It is stricter
than the engines in one way that matters to a renderer: argparse resolves unique prefixes
(`--tp` becomes `--tp-size`), so a typo can silently select another flag; here every flag must
be spelled in full.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from orchestrator.errors import FlagError
from orchestrator.resources import profiles_dir
from orchestrator.versioning import version_key

_SCHEMA_DIR = "engines"
# argparse treats these as values, not options, when no option looks like a number.
_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")
_UNBOUNDED = 1 << 30


@dataclass(frozen=True)
class FlagSpec:
    """One option of an engine's parser."""

    flags: tuple[str, ...]  # visible spellings, the first is canonical
    hidden_flags: tuple[str, ...]
    dest: str
    nargs: int | str | None
    boolean: bool
    negative_flags: tuple[str, ...]
    choices: tuple[Any, ...] | None
    json: str | None  # "object", "object_or_string" or None
    deprecated: bool
    error_on_use: str | None
    required: bool
    repeatable: bool  # append-style actions collect every occurrence
    value_kind: str | None = None  # "int", "float", "human_int": what the converter accepts
    value_words: tuple[str, ...] = ()  # words it accepts besides numbers ("auto", "None")

    @property
    def canonical(self) -> str:
        return self.flags[0]

    @property
    def all_flags(self) -> tuple[str, ...]:
        return self.flags + self.hidden_flags


class _SpecTable(Mapping[str, "FlagSpec"]):
    """Flag spelling -> FlagSpec, built per option on first use.

    A schema has hundreds of options and a command uses a few dozen; building every FlagSpec
    up front would be most of the load time.
    """

    def __init__(self, raw_options: list[dict[str, Any]]) -> None:
        self._raw = raw_options
        self._built: list[FlagSpec | None] = [None] * len(raw_options)
        self._index: dict[str, int] = {}
        for position, item in enumerate(raw_options):
            for flag in item["flags"]:
                self._index[flag] = position
            for flag in item.get("hidden_flags", ()):
                self._index[flag] = position

    def __getitem__(self, flag: str) -> FlagSpec:
        return self.at(self._index[flag])

    def __contains__(self, flag: object) -> bool:
        return flag in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def at(self, position: int) -> FlagSpec:
        spec = self._built[position]
        if spec is None:
            spec = self._built[position] = _spec_from_dict(self._raw[position])
        return spec

    def all(self) -> tuple[FlagSpec, ...]:
        return tuple(self.at(position) for position in range(len(self._raw)))


class FlagSchema:
    """Every option and positional argument one engine version's parser accepts."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.engine: str = raw["engine"]
        self.version: str = raw["version"]
        self.entry_point: str = raw.get("entry_point", raw["engine"])
        self.features = frozenset(raw.get("parser", {}).get("features", ()))
        # (dest, nargs) of each positional argument, in order.
        self.positionals: tuple[tuple[str, int | str | None], ...] = tuple(
            (item["dest"], item.get("nargs")) for item in raw["positionals"]
        )
        self.by_flag = _SpecTable(raw["options"])
        self.required: tuple[str, ...] = tuple(
            item["flags"][0] for item in raw["options"] if item.get("required")
        )

    def __repr__(self) -> str:
        return f"FlagSchema({self.engine} {self.version}, {len(self.by_flag)} flags)"

    @property
    def options(self) -> tuple[FlagSpec, ...]:
        return self.by_flag.all()

    def lookup(self, flag: str) -> FlagSpec | None:
        return self.by_flag.get(self.normalise(flag))

    def normalise(self, flag: str) -> str:
        """vLLM accepts `--max_model_len` for `--max-model-len` (the part before any dot)."""
        if "underscore_dashes" in self.features and flag.startswith("--"):
            head, dot, tail = flag[2:].partition(".")
            return "--" + head.replace("_", "-") + dot + tail
        return flag


@dataclass(frozen=True)
class CheckedFlag:
    """One option occurrence: its canonical flag, the spelling used and its values."""

    flag: str
    spelling: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class CheckedArgv:
    positionals: tuple[str, ...]
    flags: tuple[CheckedFlag, ...]
    deprecated: tuple[str, ...] = ()  # spellings the engine accepts but has deprecated

    def values(self, flag: str) -> list[tuple[str, ...]]:
        """Values of every occurrence of the canonical `flag`."""
        return [item.values for item in self.flags if item.flag == flag]


# ---------------------------------------------------------------------------------------------
# Schemas


def schema_path(engine: str, version: str) -> Path:
    return profiles_dir() / _SCHEMA_DIR / f"{engine}-{version}.json"


@cache
def known_versions(engine: str) -> tuple[str, ...]:
    """Versions of `engine` that have a schema, oldest first."""
    pattern = re.compile(rf"^{re.escape(engine)}-(\d[\w.]*)\.json$")
    found = []
    for path in (profiles_dir() / _SCHEMA_DIR).glob(f"{engine}-*.json"):
        match = pattern.match(path.name)
        if match:
            found.append(match.group(1))
    return tuple(sorted(found, key=version_key))


def load_schema(engine: str, version: str) -> FlagSchema:
    """The schema of `engine` at `version` (`v0.33.0` or `0.33.0`; read once per process)."""
    return _load_schema(engine, version.removeprefix("v"))


@cache
def _load_schema(engine: str, version: str) -> FlagSchema:
    path = schema_path(engine, version)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(known_versions(engine)) or "none"
        raise FlagError(
            f"no flag schema for {engine} {version}",
            f"known {engine} versions: {known} (add one with scripts/gen_flag_schemas.py)",
        ) from None
    except (OSError, ValueError) as error:
        raise FlagError(f"the flag schema {path.name} cannot be read: {error}") from None
    return schema_from_dict(raw)


def schema_from_dict(raw: dict[str, Any]) -> FlagSchema:
    """A `FlagSchema` from the JSON a schema file holds."""
    return FlagSchema(raw)


def _spec_from_dict(item: dict[str, Any]) -> FlagSpec:
    choices = item.get("choices")
    return FlagSpec(
        flags=tuple(item["flags"]),
        hidden_flags=tuple(item.get("hidden_flags", ())),
        dest=item["dest"],
        nargs=item.get("nargs"),
        boolean=bool(item.get("boolean")),
        negative_flags=tuple(item.get("negative_flags", ())),
        choices=tuple(choices) if choices is not None else None,
        json=item.get("json"),
        deprecated=bool(item.get("deprecated")),
        error_on_use=item.get("error_on_use"),
        required=bool(item.get("required")),
        repeatable=item.get("action") in ("_AppendAction", "_ExtendAction", "_CountAction"),
        value_kind=item.get("value"),
        value_words=tuple(item.get("value_words", ())),
    )


def versions_accepting(engine: str, flag: str) -> list[str]:
    """Known versions of `engine` (oldest first) whose parser accepts `flag` (full spelling)."""
    name = flag.split("=", 1)[0]
    accepted = []
    for version in known_versions(engine):
        schema = load_schema(engine, version)
        base = schema.normalise(name)
        if "dotted_json_keys" in schema.features and name.startswith("--"):
            base = base.split(".", 1)[0]
        if base in schema.by_flag:
            accepted.append(version)
    return accepted


def accepts(engine: str, version: str, flag: str) -> bool:
    """Whether `engine` at `version` accepts `flag` spelled in full."""
    return load_schema(engine, version).lookup(flag.split("=", 1)[0]) is not None


# ---------------------------------------------------------------------------------------------
# The walk


def check_argv(
    engine: str, version: str, argv: Sequence[str], *, part: bool = False
) -> CheckedArgv:
    """Raise `FlagError` unless `engine` at `version` accepts `argv` (see the module doc).
    `part`: `argv` is a piece of a command (the user's --engine-arg flags), so what only the
    whole command must hold (required flags, positionals, the model first) is not asked of
    it; every flag and value still is."""
    return check_against(load_schema(engine, version), argv, part=part)


def check_against(schema: FlagSchema, argv: Sequence[str], *, part: bool = False) -> CheckedArgv:
    """`check_argv` with a schema already in hand."""
    return _Walk(schema, list(argv), part=part).run()


class _Walk:
    def __init__(self, schema: FlagSchema, argv: list[str], *, part: bool = False) -> None:
        self.schema = schema
        self.argv = argv
        self.part = part
        self.index = 0
        self.positionals: list[str] = []
        self.flags: list[CheckedFlag] = []
        self.seen: dict[str, str] = {}  # dest -> spelling of its first occurrence
        self.dotted: set[str] = set()  # JSON flags given as dotted sub-keys
        self.whole_json: set[str] = set()  # JSON flags given whole

    def run(self) -> CheckedArgv:
        while self.index < len(self.argv):
            arg = self.argv[self.index]
            self.index += 1
            if arg == "--":
                self.positionals.extend(self.argv[self.index :])
                break
            if self._is_value_like(arg):
                self.positionals.append(arg)
            elif "dash_o_shorthand" in self.schema.features and arg.startswith("-O"):
                self._optimisation_shorthand(arg)
            else:
                self._option(arg)
        if not self.part:
            self._check_positionals()
            self._check_required()
            self._check_model_first()
        self._check_json_forms()
        deprecated = tuple(
            item.spelling for item in self.flags if self.schema.by_flag[item.flag].deprecated
        )
        return CheckedArgv(tuple(self.positionals), tuple(self.flags), deprecated)

    # -- options ----------------------------------------------------------------------------

    def _option(self, arg: str) -> None:
        spelling, has_inline, inline = arg.partition("=")
        name = self.schema.normalise(spelling)
        if (
            "dotted_json_keys" in self.schema.features
            and "." in name
            and self.schema.lookup(name) is None
        ):
            self._dotted(spelling, name, inline if has_inline else None)
            return
        spec = self.schema.by_flag.get(name)
        if spec is None:
            raise self._unknown(spelling)
        self._record_use(spec, spelling)
        values = self._values(spec, spelling, inline if has_inline else None)
        if spec.json:
            self.whole_json.add(spec.canonical)
        self.flags.append(CheckedFlag(spec.canonical, spelling, values))

    def _values(self, spec: FlagSpec, spelling: str, inline: str | None) -> tuple[str, ...]:
        low, high = _arity(spec.nargs)
        if inline is not None:
            if high == 0:
                raise FlagError(
                    f"{spelling} takes no value but was given {spelling}={inline}",
                    f"write {spelling} alone",
                )
            values = [inline]
        else:
            values = []
            while len(values) < high and self.index < len(self.argv):
                candidate = self.argv[self.index]
                if not self._is_value_like(candidate):
                    break
                values.append(candidate)
                self.index += 1
        if len(values) < low:
            follower = self.argv[self.index] if self.index < len(self.argv) else None
            after = f" (next is {follower})" if follower is not None else ""
            raise FlagError(
                f"{spelling} of {self._who()} needs {_describe_arity(spec.nargs)}{after}",
                f"write {spelling} VALUE, or {spelling}=VALUE for a value starting with '-'",
            )
        for value in values:
            self._check_value(spec, spelling, value)
        return tuple(values)

    def _check_value(self, spec: FlagSpec, spelling: str, value: str) -> None:
        if spec.choices is not None and not _in_choices(value, spec.choices):
            allowed = ", ".join(str(choice) for choice in spec.choices)
            import difflib  # only to suggest a fix for a rejected argument

            nearest = difflib.get_close_matches(value, [str(c) for c in spec.choices], n=1)
            hint = f"did you mean {nearest[0]}? " if nearest else ""
            raise FlagError(
                f"{spelling} {value} is not accepted by {self._who()}",
                f"{hint}choices: {allowed}",
            )
        if spec.json == "object" or (spec.json == "object_or_string" and value.lstrip()[:1] == "{"):
            _require_json_object(spelling, value, self._who())
        if spec.value_kind is not None and spec.choices is None:
            from orchestrator.engines.flag_values import check_value_kind

            check_value_kind(spec.value_kind, spelling, value, self._who(), spec.value_words)

    def _record_use(self, spec: FlagSpec, spelling: str) -> None:
        if spec.error_on_use:
            raise FlagError(
                f"{spelling} is rejected by {self._who()}: {spec.error_on_use.rstrip('.')}",
                "remove it from the command line",
            )
        if spec.repeatable:
            return
        first = self.seen.get(spec.dest)
        if first is not None:
            raise FlagError(
                f"{spelling} repeats {first} (same setting) in a {self._who()} command line",
                "give each setting once",
            )
        self.seen[spec.dest] = spelling

    def _dotted(self, spelling: str, name: str, inline: str | None) -> None:
        """`--kv-transfer-config.kv_role kv_producer`: a sub-key of a JSON config flag."""
        base, _, path = name.partition(".")
        spec = self.schema.by_flag.get(base)
        if spec is None:
            raise self._unknown(spelling.partition(".")[0])
        if not spec.json:
            raise FlagError(
                f"{spelling}: {spec.canonical} of {self._who()} is not a JSON config flag",
                f"pass {spec.canonical} VALUE",
            )
        if not path.rstrip("+") or any(not part for part in path.rstrip("+").split(".")):
            raise FlagError(f"{spelling} has an empty sub-key", f"write {base}.KEY VALUE")
        if inline is None:
            # vLLM takes the next word as the value whatever it looks like.
            if self.index >= len(self.argv):
                raise FlagError(
                    f"{spelling} of {self._who()} needs a value", f"write {spelling} VALUE"
                )
            inline = self.argv[self.index]
            self.index += 1
        key = f"{base}.{path}"
        if not path.endswith("+"):  # `key+` appends to a list and may repeat
            if key in self.seen:
                raise FlagError(f"{spelling} repeats {self.seen[key]}", "give each sub-key once")
            self.seen[key] = spelling
        self.dotted.add(spec.canonical)
        self.flags.append(CheckedFlag(spec.canonical, spelling, (inline,)))

    def _optimisation_shorthand(self, arg: str) -> None:
        """vLLM: `-O3`, `-O=3`, `-Odecode` and `-O 3` mean `--optimization-level`."""
        spec = self.schema.by_flag.get("--optimization-level")
        if spec is None:
            raise self._unknown(arg)
        if arg == "-O":
            if self.index >= len(self.argv) or self.argv[self.index] not in {"0", "1", "2", "3"}:
                raise self._unknown(arg)
            value = self.argv[self.index]
            self.index += 1
        else:
            value = arg[3:] if arg[2:3] == "=" else arg[2:]
        self._record_use(spec, arg)
        self._check_value(spec, arg, value)
        self.flags.append(CheckedFlag(spec.canonical, arg, (value,)))

    # -- whole-command checks ---------------------------------------------------------------

    def _check_positionals(self) -> None:
        capacity = sum(_arity(nargs)[1] for _, nargs in self.schema.positionals)
        needed = sum(_arity(nargs)[0] for _, nargs in self.schema.positionals)
        if len(self.positionals) > capacity:
            extra = self.positionals[capacity]
            if not self.schema.positionals:
                hint = "it takes no positional arguments"
                if "--model-path" in self.schema.by_flag:
                    hint += "; pass the model as --model-path MODEL"
            else:
                names = ", ".join(dest for dest, _ in self.schema.positionals)
                hint = f"it takes {capacity} positional argument(s): {names}"
            raise FlagError(f"unexpected argument {extra!r} for {self._who()}", hint)
        if len(self.positionals) < needed:
            names = ", ".join(dest for dest, _ in self.schema.positionals)
            raise FlagError(f"{self._who()} needs the positional argument(s) {names}")

    def _check_required(self) -> None:
        if "--config" in {item.flag for item in self.flags}:
            return  # a config file may supply required values
        # `schema.required` lists them in schema order: no need to build every FlagSpec.
        for flag in self.schema.required:
            spec = self.schema.by_flag[flag]
            if spec.dest not in self.seen:
                raise FlagError(
                    f"{self._who()} requires {spec.canonical}", f"add {spec.canonical} VALUE"
                )

    def _check_json_forms(self) -> None:
        both = sorted(self.dotted & self.whole_json)
        if both:
            raise FlagError(
                f"{both[0]} is given both whole and as dotted sub-keys; vLLM then keeps only "
                "the sub-keys",
                "use one form",
            )

    def _check_model_first(self) -> None:
        """vLLM refuses `--served-model-name` unless the model comes first (or --config/--model)."""
        if "model_first_with_served_name" not in self.schema.features or not self.argv:
            return
        given = {item.flag for item in self.flags}
        if (
            self.argv[0].startswith("-")
            and "--served-model-name" in given
            and not given & {"--model", "--config"}
        ):
            raise FlagError(
                f"{self._who()} needs the model as the first argument when "
                "--served-model-name is given",
                "put MODEL before the flags",
            )

    # -- helpers ----------------------------------------------------------------------------

    def _is_value_like(self, arg: str) -> bool:
        """argparse's rule: a word is a value unless it looks like an option. Negative numbers
        and words with a space (that do not start with a known flag) are values."""
        if not arg.startswith("-") or arg == "-" or _NEGATIVE_NUMBER.match(arg):
            return True
        return " " in arg and self.schema.normalise(arg.split("=", 1)[0]) not in self.schema.by_flag

    def _who(self) -> str:
        return f"{self.schema.engine} {self.schema.version}"

    def _unknown(self, spelling: str) -> FlagError:
        return unknown_flag_error(self.schema, spelling)


def unknown_flag_error(schema: FlagSchema, spelling: str) -> FlagError:
    """The one-line error for a flag `schema` does not accept, with the best suggestion."""
    name = schema.normalise(spelling)
    prefixed = sorted(
        {schema.by_flag[flag].canonical for flag in schema.by_flag if flag.startswith(name)}
    )
    if name.startswith("--") and len(name) > 2 and prefixed:
        if len(prefixed) == 1:
            return FlagError(
                f"{spelling} is an abbreviation in a {schema.engine} {schema.version} command line",
                f"write the full flag {prefixed[0]}",
            )
        shown = ", ".join(prefixed[:5]) + (", ..." if len(prefixed) > 5 else "")
        return FlagError(
            f"{spelling} is an ambiguous abbreviation for {schema.engine} {schema.version}",
            f"write one full flag: {shown}",
        )
    message = f"{spelling} is not a flag of {schema.engine} {schema.version}"
    others = [v for v in versions_accepting(schema.engine, name) if v != schema.version]
    hints = []
    if others:
        hints.append(f"it is accepted by {schema.engine} {', '.join(others)}")
    replacement = _same_setting(schema, name, others)
    if replacement:
        hints.append(f"use {replacement}")
    elif not others:
        # Only a flag no known version has is a likely typo; a nearby flag of another
        # setting would be a wrong suggestion for a flag that moved between versions.
        import difflib  # only to suggest a fix for a rejected argument

        nearest = difflib.get_close_matches(name, list(schema.by_flag), n=1, cutoff=0.6)
        if nearest:
            hints.append(f"did you mean {schema.by_flag[nearest[0]].canonical}?")
    return FlagError(message, "; ".join(hints) or None)


def _same_setting(schema: FlagSchema, name: str, other_versions: list[str]) -> str | None:
    """The spelling of the same setting (same dest, same polarity) in this version."""
    for version in reversed(other_versions):
        other = load_schema(schema.engine, version).lookup(name)
        if other is None:
            continue
        for spec in schema.options:
            if spec.dest != other.dest:
                continue
            if other.boolean and name in other.negative_flags:
                if spec.negative_flags:
                    return _prefer_visible(spec, spec.negative_flags)
                return None
            return spec.canonical
    return None


def _prefer_visible(spec: FlagSpec, flags: tuple[str, ...]) -> str:
    visible = [flag for flag in flags if flag in spec.flags]
    return (visible or list(flags))[0]


def _arity(nargs: int | str | None) -> tuple[int, int]:
    if nargs is None:
        return 1, 1
    if isinstance(nargs, int):
        return nargs, nargs
    return {"?": (0, 1), "*": (0, _UNBOUNDED), "+": (1, _UNBOUNDED)}.get(nargs, (0, _UNBOUNDED))


def _describe_arity(nargs: int | str | None) -> str:
    low, high = _arity(nargs)
    if low == high:
        return "a value" if low == 1 else f"{low} values"
    return "at least one value"


def _in_choices(value: str, choices: tuple[Any, ...]) -> bool:
    for choice in choices:
        if isinstance(choice, bool) or not isinstance(choice, (int, float)):
            if str(choice) == value:
                return True
            continue
        try:
            if type(choice)(value) == choice:
                return True
        except ValueError:
            continue
    return False


def _require_json_object(spelling: str, value: str, who: str) -> None:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise FlagError(
            f"{spelling} of {who} needs a JSON object, got invalid JSON ({error.msg} at "
            f"character {error.pos})",
            'quote it as one argument, e.g. \'{"key": "value"}\'',
        ) from None
    if not isinstance(parsed, dict):
        raise FlagError(
            f"{spelling} of {who} needs a JSON object, got {type(parsed).__name__}",
            "write it as '{\"key\": value}'",
        )


def iter_flags(engine: str, version: str) -> Iterator[FlagSpec]:
    """Every option of `engine` at `version` (for listings and tests)."""
    yield from load_schema(engine, version).options
