"""Build each engine's real argument parser the way the engine's own entry point builds it.

Runs inside a worker process whose `sys.path` starts with the unpacked engine source and whose
missing dependencies are stood in for by `stubs`. Each builder returns the parser, the command
it belongs to and the parser features the checker must honour.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest.mock import patch

from flagschema import stubs


@dataclass(frozen=True)
class Built:
    parser: argparse.ArgumentParser
    entry_point: str
    features: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EngineRecipe:
    packages: tuple[str, ...]  # top-level import packages of the engine
    build: Callable[[Path], Built]
    stub_names: tuple[str, ...] = ()
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    # sys.argv while building: vLLM reads its help texts only when `--help` is on it (and
    # hides `--model` when `serve --help` is).
    argv: tuple[str, ...] = ()


def _infer_schema(function: Callable[..., Any], **_: Any) -> str:
    """Stand-in for torch.library.infer_schema: vLLM's IR compares op schemas at import time,
    so two implementations of one op must yield the same text (their return arity)."""
    returned = typing.get_type_hints(function).get("return")
    parts = typing.get_args(returned) if typing.get_origin(returned) is tuple else (returned,)
    return "(Tensor x) -> " + ", ".join(getattr(part, "__name__", str(part)) for part in parts)


# Real torch has `torch.xpu` and `torch.mps`, but not these: platform probes use hasattr().
_TORCH_OVERRIDES: dict[str, dict[str, Any]] = {
    "torch": {name: stubs.ABSENT for name in ("npu", "mlu", "musa", "hpu", "sdaa")},
    "torch.library": {"infer_schema": _infer_schema},
}


def build_vllm(source: Path) -> Built:
    """`vllm serve`: `make_arg_parser` on the `serve` sub-parser, as `cli/serve.py` does."""
    serve_path = source / "vllm" / "entrypoints" / "cli" / "serve.py"
    module_name = _module_importing(serve_path, "make_arg_parser")
    argparse_utils = importlib.import_module("vllm.utils.argparse_utils")
    cli_args = importlib.import_module(module_name)
    root = argparse_utils.FlexibleArgumentParser(description="vLLM CLI")
    subparsers = root.add_subparsers(required=False, dest="subparser")
    serve = subparsers.add_parser("serve", usage="vllm serve [model_tag] [options]")
    # As in vLLM's docs generator: device inference needs a platform, which a CPU box lacks.
    with patch("vllm.config.DeviceConfig.__post_init__"):
        parser = cli_args.make_arg_parser(serve) or serve
    for action in getattr(parser, "_deprecated", ()):
        action.deprecated = True
    features = [
        "dash_o_shorthand",  # -O3, -O=3, -Odecode, -O 3
        "dotted_json_keys",  # --kv-transfer-config.kv_role kv_producer
        "model_first_with_served_name",  # FlexibleArgumentParser.parse_args refuses otherwise
        "underscore_dashes",  # --max_model_len
    ]
    return Built(parser, "vllm serve", features)


def build_sglang(source: Path) -> Built:
    """`sglang serve` / `python -m sglang.launch_server`: `prepare_server_args` builds it so."""
    server_args = importlib.import_module("sglang.srt.server_args")
    parser = argparse.ArgumentParser(prog="sglang serve")
    server_args.ServerArgs.add_cli_args(parser)
    return Built(parser, "python -m sglang.launch_server")


def _router_parser(package: str, prog: str) -> argparse.ArgumentParser:
    """Routers: `launch_router.parse_router_args` builds the parser from `RouterArgs`."""
    router_args = importlib.import_module(f"{package}.router_args")
    parser = argparse.ArgumentParser(prog=prog)
    router_args.RouterArgs.add_cli_args(parser, use_router_prefix=False)
    return parser


def build_vllm_router(source: Path) -> Built:
    return Built(_router_parser("vllm_router", "vllm-router"), "vllm-router")


def build_sglang_router(source: Path) -> Built:
    return Built(
        _router_parser("sglang_router", "sglang-router"), "python -m sglang_router.launch_router"
    )


def build_smg(source: Path) -> Built:
    return Built(_router_parser("smg", "smg launch"), "smg launch")


RECIPES: dict[str, EngineRecipe] = {
    "vllm": EngineRecipe(("vllm",), build_vllm, ("torch",), _TORCH_OVERRIDES, ("vllm", "--help")),
    "sglang": EngineRecipe(("sglang",), build_sglang, ("torch",), _TORCH_OVERRIDES),
    "vllm-router": EngineRecipe(("vllm_router", "vllm_router_rs"), build_vllm_router),
    "sglang-router": EngineRecipe(("sglang_router",), build_sglang_router),
    "smg": EngineRecipe(("smg",), build_smg),
}


def _module_importing(path: Path, name: str) -> str:
    """The module `path` imports `name` from (the parser factory moved between releases)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names = {alias.name for alias in getattr(node, "names", ())}
        if isinstance(node, ast.ImportFrom) and node.module and name in names:
            return node.module
    raise LookupError(f"{path} does not import {name}")
