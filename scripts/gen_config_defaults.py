#!/usr/bin/env python3
"""Generate `profiles/models/config-defaults/transformers-<version>.tsv` from a transformers wheel.

    python scripts/gen_config_defaults.py 5.25.0
    python scripts/gen_config_defaults.py 5.25.0 --wheel path/to/transformers-5.25.0-*.whl

A checkpoint's `config.json` lists only the fields that differ from its configuration class;
the engines build that class (`AutoConfig`), so a field left out takes the class default
(Gemma 3 leaves `vocab_size`, `max_position_embeddings` and the sliding pattern to them).
The planner must not import transformers, so the defaults are extracted here, as data: every
`configuration_*.py` of the wheel is parsed with `ast` (nothing is imported) and each class
with a literal `model_type` gives its literal defaults, from class-level fields (5.x) or
`__init__` keyword defaults (4.x), with those of a base class in the wheel merged under them.
Fields that size nothing (token ids, dropout, numerics) are left out.

The file is one header line (JSON: source, version) and one line per model type,
`<model_type> TAB <JSON of its defaults>`, so a plan finds its one line without parsing the
other eight hundred.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "profiles" / "models" / "config-defaults"
CONFIG_FILE = re.compile(r"^transformers/models/[^/]+/configuration_[^/]+\.py$")
# Fields that never size anything: tokens, training knobs, numerics.
SKIP = re.compile(
    r"token_id|dropout|eps$|initializer|rope|_act$|activation|logit|jitter|loss|coef|"
    r"use_cache|output_|return_|pretraining_tp|torchscript|softcap|router_z|^is_"
)
ALLOWED_TYPES = (int, float, bool, str)


def fetch_wheel(version: str, directory: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", f"transformers=={version}", "--no-deps",
         "--only-binary=:all:", "-d", str(directory), "-q"],
        check=True,
    )  # fmt: skip
    wheels = sorted(directory.glob(f"transformers-{version}-*.whl"))
    if not wheels:
        raise SystemExit(f"pip downloaded no transformers {version} wheel")
    return wheels[0]


_ARITHMETIC = {ast.Mult: lambda a, b: a * b, ast.Add: lambda a, b: a + b,
               ast.Sub: lambda a, b: a - b, ast.FloorDiv: lambda a, b: a // b}  # fmt: skip


def _evaluate(node: ast.expr) -> Any:
    """A literal, or integer arithmetic on literals (`4096 * 32`)."""
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(left, int) and isinstance(right, int):
            return _ARITHMETIC[type(node.op)](left, right)
        raise ValueError("not integer arithmetic")
    return ast.literal_eval(node)


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        return ...
    try:
        value = _evaluate(node)
    except (ValueError, SyntaxError, TypeError):
        return ...
    if value is None:
        return ...  # None means "derived from other fields": the same as leaving it out
    if isinstance(value, ALLOWED_TYPES):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, ALLOWED_TYPES) for v in value):
        return list(value)
    return ...


def _class_defaults(node: ast.ClassDef) -> tuple[str | None, dict[str, Any]]:
    model_type: str | None = None
    fields: dict[str, Any] = {}
    for item in node.body:
        if isinstance(item, ast.Assign) and len(item.targets) == 1:
            target = item.targets[0]
            if isinstance(target, ast.Name) and target.id == "model_type":
                value = _literal(item.value)
                model_type = value if isinstance(value, str) else None
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            value = _literal(item.value)
            if value is not ...:
                fields[item.target.id] = value
        elif isinstance(item, ast.FunctionDef) and item.name == "__init__":
            args = item.args
            positional = args.args[len(args.args) - len(args.defaults) :]
            for arg, default in zip(positional, args.defaults, strict=True):
                value = _literal(default)
                if value is not ...:
                    fields.setdefault(arg.arg, value)
            for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
                value = _literal(kw_default)
                if value is not ...:
                    fields.setdefault(arg.arg, value)
    return model_type, fields


def extract(wheel_path: Path) -> dict[str, dict[str, Any]]:
    classes: dict[str, tuple[str | None, dict[str, Any], list[str]]] = {}
    with zipfile.ZipFile(wheel_path) as wheel:
        for name in sorted(wheel.namelist()):
            if not CONFIG_FILE.match(name):
                continue
            tree = ast.parse(wheel.read(name).decode("utf-8"))
            for node in tree.body:
                if isinstance(node, ast.ClassDef):
                    model_type, fields = _class_defaults(node)
                    bases = [base.id for base in node.bases if isinstance(base, ast.Name)]
                    classes[node.name] = (model_type, fields, bases)

    def merged(name: str, seen: frozenset[str] = frozenset()) -> dict[str, Any]:
        _, fields, bases = classes[name]
        out: dict[str, Any] = {}
        for base in bases:
            if base in classes and base not in seen:
                out.update(merged(base, seen | {name}))
        out.update(fields)
        return out

    result: dict[str, dict[str, Any]] = {}
    for name, (model_type, _, _) in classes.items():
        if not model_type or model_type in result:
            continue
        fields = {k: v for k, v in merged(name).items() if not SKIP.search(k)}
        if fields:
            result[model_type] = dict(sorted(fields.items()))
    return dict(sorted(result.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version")
    parser.add_argument("--wheel", type=Path, help="use this wheel instead of downloading")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(args.version, Path(tmp))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        defaults = extract(wheel)
    header = {
        "source": f"transformers {args.version} (PyPI wheel {wheel.name}, sha256 {digest}): "
        "literal defaults of each configuration class, parsed with ast",
        "transformers_version": args.version,
    }
    lines = [json.dumps(header)]
    lines += [
        f"{model_type}\t{json.dumps(fields, separators=(',', ':'))}"
        for model_type, fields in defaults.items()
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"transformers-{args.version}.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{path}: {len(defaults)} model types")


if __name__ == "__main__":
    main()
