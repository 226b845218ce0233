"""YAML (and JSON) documents that remember the line of every key, for one-line errors.

`load_document` returns the data and a `LineMap`: path (`("nodes", 1, "docker")`) -> the
1-based line of that key (or sequence item). Pydantic error locations map back through it,
so a message reads `cluster.yaml:14: nodes[1].docker: ...`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.errors import HardwareError

Path_ = tuple[str | int, ...]

# Cluster and inventory files are a few kilobytes; these bounds are far above any real one and
# far below what hurts: aliases can make a small file stand for an exponential tree ("billion
# laughs"), and a self-referencing alias for an infinite one.
MAX_DOCUMENT_BYTES = 4 * 2**20
MAX_EXPANDED_NODES = 200_000
MAX_DEPTH = 100


@dataclass
class LineMap:
    source: str
    lines: dict[Path_, int] = field(default_factory=dict)

    def line(self, path: Sequence[str | int]) -> int:
        """The line of the longest known prefix of `path` (1 for the document itself)."""
        key = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), 1)

    def error(
        self, path: Sequence[str | int], problem: str, hint: str | None = None
    ) -> HardwareError:
        where = f"{self.source}:{self.line(path)}"
        label = field_label(path)
        return HardwareError(
            f"{where}: {label}: {problem}" if label else f"{where}: {problem}", hint
        )

    def sub(self, prefix: Sequence[str | int]) -> LineMap:
        """The map of a nested document (an inline inventory), re-rooted at `prefix`."""
        size = len(prefix)
        nested = {p[size:]: line for p, line in self.lines.items() if p[:size] == tuple(prefix)}
        return LineMap(self.source, nested)


def field_label(path: Sequence[str | int]) -> str:
    label = ""
    for part in path:
        label += f"[{part}]" if isinstance(part, int) else (f".{part}" if label else part)
    return label


def _walk(node: Any, path: Path_, lines: dict[Path_, int]) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, str(key_node.value))
            lines.setdefault(key, key_node.start_mark.line + 1)
            _walk(value_node, key, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = (*path, index)
            lines.setdefault(key, item.start_mark.line + 1)
            _walk(item, key, lines)


def load_document(path: Path, label: str | None = None) -> tuple[Any, LineMap]:
    """Parse `path` (YAML or JSON) into plain data plus its line map.

    Raises `HardwareError` naming the file and line for unreadable or malformed input."""
    import yaml

    source = label or str(path)
    try:
        text = _read_bounded(path, source)
    except OSError as error:
        raise HardwareError(
            f"{source}: cannot read the file ({error.strerror or error})",
            "check the path given to --cluster",
        ) from error
    except UnicodeDecodeError as error:
        raise HardwareError(f"{source}: the file is not UTF-8 text", "save it as UTF-8") from error
    try:
        # libyaml when present: the pure-Python parser is several times slower (plan hot path).
        loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        root = yaml.compose(text, Loader=loader)
        if root is not None:
            _check_expansion(root, source)
        data = yaml.load(text, Loader=loader)
    except RecursionError:
        raise HardwareError(
            f"{source}: the document is nested too deeply", f"keep it under {MAX_DEPTH} levels"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise HardwareError(
            f"{source}:{line}: invalid YAML: {problem}", "fix the syntax"
        ) from error
    lines: dict[Path_, int] = {(): root.start_mark.line + 1 if root is not None else 1}
    if root is not None:
        _walk(root, (), lines)
    return data, LineMap(source, lines)


def _read_bounded(path: Path, source: str) -> str:
    with path.open("rb") as handle:
        data = handle.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise HardwareError(
            f"{source}: the file is over {MAX_DOCUMENT_BYTES // 2**20} MiB",
            "a cluster file describes nodes in a few kilobytes; check the path",
        )
    return data.decode("utf-8")


def _check_expansion(root: Any, source: str) -> None:
    """Refuse alias cycles, nesting over MAX_DEPTH, and documents whose aliases expand to more
    than MAX_EXPANDED_NODES nodes, counting each shared node once per place it appears (what
    the loaders and validators downstream would walk) without expanding anything."""
    import yaml

    sizes: dict[int, int] = {}  # id(node) -> nodes in its expansion
    on_path: set[int] = set()
    # Iterative post-order walk: (node, depth, children visited yet)
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, expanded = stack.pop()
        key = id(node)
        children = _children(node, yaml)
        if expanded:
            on_path.discard(key)
            total = 1 + sum(sizes[id(child)] for child in children)
            if total > MAX_EXPANDED_NODES:
                raise HardwareError(
                    f"{source}:{node.start_mark.line + 1}: aliases expand this document to over "
                    f"{MAX_EXPANDED_NODES} values",
                    "write the values out instead of nesting aliases",
                )
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise HardwareError(
                f"{source}:{node.start_mark.line + 1}: an alias refers to the value that "
                "contains it (a recursive structure)",
                "replace the alias with the values it stands for",
            )
        if depth > MAX_DEPTH:
            raise HardwareError(
                f"{source}:{node.start_mark.line + 1}: the document is nested over "
                f"{MAX_DEPTH} levels deep",
                "flatten it",
            )
        on_path.add(key)
        stack.append((node, depth, True))
        for child in children:
            if id(child) not in sizes:
                stack.append((child, depth + 1, False))


def _children(node: Any, yaml: Any) -> list[Any]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def validation_error(
    error: ValidationError,
    lines: LineMap,
    prefix: Path_ = (),
    allowed: Callable[[Path_], list[str]] | None = None,
) -> HardwareError:
    """The first pydantic error as one line with file, line and field."""
    first = error.errors()[0]
    loc = tuple(part for part in first["loc"] if isinstance(part, (str, int)))
    # Union members add their type name to the location ("str", "dict[str,any]"): drop them.
    while loc and isinstance(loc[-1], str) and (*prefix, *loc) not in lines.lines and len(loc) > 1:
        parent = (*prefix, *loc[:-1])
        if parent in lines.lines and first["type"] not in ("extra_forbidden", "missing"):
            loc = loc[:-1]
        else:
            break
    kind = first["type"]
    message = str(first["msg"]).removeprefix("Value error, ")
    path = (*prefix, *loc)
    if kind == "extra_forbidden":
        names = allowed(loc[:-1]) if allowed else []
        hint = (
            f"the fields here are: {', '.join(names)}"
            if names
            else "remove it or check its spelling"
        )
        return lines.error(path, "unknown field", hint)
    if kind == "missing":
        return lines.error(path, "missing required field", "add it")
    return lines.error(path, message[:1].lower() + message[1:])
