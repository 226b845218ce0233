#!/usr/bin/env python3
"""Generate `profiles/engines/architectures/<engine>-<version>.json` from an engine's wheel.

    python scripts/gen_model_architectures.py vllm 0.33.0
    python scripts/gen_model_architectures.py sglang 0.5.23 --out profiles/engines/architectures

The wheel is the one `gen_flag_schemas.py` downloads (same cache). Nothing is imported from
it: the sources are parsed with `ast`, so the list is what the released code registers.

* vLLM: the keys of the generative registries in `vllm/model_executor/models/registry.py`
  (`_TEXT_GENERATION_MODELS`, `_MULTIMODAL_MODELS`): the `architectures[0]` names it loads.
* SGLang: every class a module under `sglang/srt/models/` exports as `EntryClass` (one class
  or a list); SGLang matches `architectures[0]` against those class names.

Beside them, the quantization methods the version's loader accepts (`quant_method` values):
vLLM's `QuantizationMethods` literal, SGLang's `BASE_QUANTIZATION_METHODS` with the entries a
CUDA build adds.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_flag_schemas import default_cache, fetch_wheel

VLLM_REGISTRY = "vllm/model_executor/models/registry.py"
VLLM_GENERATIVE = ("_TEXT_GENERATION_MODELS", "_MULTIMODAL_MODELS")
SGLANG_MODELS = "sglang/srt/models/"
VLLM_QUANTIZATION = "vllm/model_executor/layers/quantization/__init__.py"
SGLANG_QUANTIZATION = "sglang/srt/layers/quantization/__init__.py"
SGLANG_METHODS = "BASE_QUANTIZATION_METHODS"


def vllm_architectures(wheel: zipfile.ZipFile) -> list[str]:
    tree = ast.parse(wheel.read(VLLM_REGISTRY).decode("utf-8"))
    names: set[str] = set()
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(node, ast.AnnAssign):
            target = node.target
        if not isinstance(target, ast.Name) or target.id not in VLLM_GENERATIVE:
            continue
        value = node.value
        if isinstance(value, ast.Dict):
            names.update(k.value for k in value.keys if isinstance(k, ast.Constant))
    if not names:
        raise SystemExit(f"{VLLM_REGISTRY}: no generative registry found")
    return sorted(str(name) for name in names)


def _entry_classes(source: str) -> list[str]:
    for node in ast.parse(source).body:
        if not isinstance(node, ast.Assign):
            continue
        if not any(isinstance(t, ast.Name) and t.id == "EntryClass" for t in node.targets):
            continue
        value = node.value
        items = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
        return [item.id for item in items if isinstance(item, ast.Name)]
    return []


def sglang_architectures(wheel: zipfile.ZipFile) -> list[str]:
    names: set[str] = set()
    for member in wheel.namelist():
        if member.startswith(SGLANG_MODELS) and member.endswith(".py"):
            names.update(_entry_classes(wheel.read(member).decode("utf-8-sig")))
    if not names:
        raise SystemExit(f"{SGLANG_MODELS}: no EntryClass found")
    return sorted(names)


def vllm_quantization(wheel: zipfile.ZipFile) -> list[str]:
    tree = ast.parse(wheel.read(VLLM_QUANTIZATION).decode("utf-8"))
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
            continue
        if node.targets[0].id != "QuantizationMethods":
            continue
        value = node.value
        if isinstance(value, ast.Subscript) and isinstance(value.slice, ast.Tuple):
            return sorted(
                str(item.value) for item in value.slice.elts if isinstance(item, ast.Constant)
            )
    raise SystemExit(f"{VLLM_QUANTIZATION}: no QuantizationMethods literal found")


def _dict_keys(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Dict):
        return {str(k.value) for k in node.keys if isinstance(k, ast.Constant)}
    return set()


def sglang_quantization(wheel: zipfile.ZipFile) -> list[str]:
    tree = ast.parse(wheel.read(SGLANG_QUANTIZATION).decode("utf-8-sig"))
    names: set[str] = set()
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign):
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == SGLANG_METHODS and node.value:
            names |= _dict_keys(node.value)
        if isinstance(node, ast.If) and "is_cuda" in ast.unparse(node.test):
            for call in ast.walk(node):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "update"
                    and ast.unparse(call.func.value) == SGLANG_METHODS
                    and call.args
                ):
                    names |= _dict_keys(call.args[0])
    if not names:
        raise SystemExit(f"{SGLANG_QUANTIZATION}: no {SGLANG_METHODS} found")
    return sorted(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", choices=["vllm", "sglang"])
    parser.add_argument("version")
    parser.add_argument("--out", type=Path, default=Path("profiles/engines/architectures"))
    parser.add_argument("--cache", type=Path, default=default_cache())
    args = parser.parse_args()
    wheel_path = fetch_wheel(args.engine, args.version, args.cache)
    digest = hashlib.sha256(wheel_path.read_bytes()).hexdigest()[:16]
    with zipfile.ZipFile(wheel_path) as wheel:
        if args.engine == "vllm":
            names, methods = vllm_architectures(wheel), vllm_quantization(wheel)
        else:
            names, methods = sglang_architectures(wheel), sglang_quantization(wheel)
    document = {
        "format": 1,
        "engine": args.engine,
        "version": args.version,
        "generated_by": (
            f"scripts/gen_model_architectures.py {args.engine} {args.version} "
            f"from {wheel_path.name} (sha256 {digest})"
        ),
        "architectures": names,
        "quantization_methods": methods,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"{args.engine}-{args.version}.json"
    target.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"{target}: {len(names)} architectures")


if __name__ == "__main__":
    main()
