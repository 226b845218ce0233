"""The schema generator on small fake engines: the same pipeline as for the real wheels
(stand-ins for torch and transformers, the engine's own parser classes), without network."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engines.flags import check_against, schema_from_dict
from orchestrator.errors import FlagError

REPO_ROOT = Path(__file__).resolve().parents[2]
GENERATOR = REPO_ROOT / "scripts" / "gen_flag_schemas.py"

FAKE_VLLM = {
    "vllm/__init__.py": "",
    "vllm-9.9.9.dist-info/METADATA": "Name: vllm\nVersion: 9.9.9\nRequires-Dist: torch==2.14.0\n",
    "vllm/config/__init__.py": """
        class DeviceConfig:
            def __post_init__(self):
                raise RuntimeError("Failed to infer device type")
    """,
    "vllm/utils/__init__.py": "",
    "vllm/utils/argparse_utils.py": """
        import argparse

        class EnableDisableAction(argparse.BooleanOptionalAction):
            def __init__(self, option_strings, dest, *args, **kwargs):
                super().__init__(option_strings, dest, *args, **kwargs)
                inverses = ["--disable-" + o.removeprefix("--enable-")
                            for o in option_strings if o.startswith("--enable-")]
                self.negative_option_strings = (
                    {o for o in self.option_strings if o not in option_strings} | set(inverses))
                visible = [*option_strings, *inverses] if inverses else list(self.option_strings)
                self.option_strings = [*self.option_strings, *inverses]
                self.visible_option_strings = visible

        class FlexibleArgumentParser(argparse.ArgumentParser):
            def __init__(self, *args, **kwargs):
                self._deprecated = set()
                super().__init__(*args, **kwargs)
                self.register("action", argparse.BooleanOptionalAction, EnableDisableAction)

            def add_argument(self, *args, deprecated=False, **kwargs):
                action = super().add_argument(*args, **kwargs)
                if isinstance(action, EnableDisableAction):
                    action.option_strings = action.visible_option_strings
                if deprecated:
                    self._deprecated.add(action)
                return action
    """,
    "vllm/entrypoints/__init__.py": "",
    "vllm/entrypoints/cli/__init__.py": "",
    "vllm/entrypoints/cli/serve.py": """
        import uvloop  # never imported by the generator: it reads this file's imports only
        from vllm.entrypoints.common.cli_args import make_arg_parser
    """,
    "vllm/entrypoints/common/__init__.py": "",
    "vllm/entrypoints/common/cli_args.py": """
        import argparse
        import importlib.metadata
        import json

        import torch
        from transformers import PretrainedConfig

        from vllm.config import DeviceConfig

        assert torch.__version__ == "2.14.0" == importlib.metadata.version("torch")

        class LocalConfig(PretrainedConfig):
            def __init__(self):
                self.max_len = 4096

        def optional_type(convert):
            def _optional_type(value):
                return None if value in ("", "None") else convert(value)
            return _optional_type

        def make_arg_parser(parser):
            DeviceConfig().__post_init__()
            parser.add_argument("model_tag", nargs="?", help="The model tag to serve.")
            parser.add_argument("--max-model-len", type=int, default=LocalConfig().max_len)
            parser.add_argument("--tensor-parallel-size", "-tp", type=int, default=1,
                                help="Number of tensor parallel groups. More text follows.")
            parser.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction,
                                default=None)
            parser.add_argument("--dtype", choices=["auto", "bfloat16"], default="auto")
            parser.add_argument("--kv-transfer-config", type=optional_type(json.loads))
            parser.add_argument("--old-flag", action="store_true", deprecated=True)
            parser.add_argument("--device", default=torch.device("cpu"))
            parser.add_argument("--device-kind", default="cuda" if torch.cuda.is_available() else "cpu")
            return parser
    """,
}

FAKE_SGLANG = {
    "sglang/__init__.py": "import torch\n",
    "sglang/srt/__init__.py": "",
    "sglang/srt/server_args.py": """
        import argparse

        import triton

        class DeprecatedAction(argparse.Action):
            def __init__(self, option_strings, dest, error_message=None, nargs=0, **kwargs):
                self.error_message = error_message
                super().__init__(option_strings, dest, nargs=nargs, **kwargs)

        class DeprecatedStoreTrueAction(argparse.Action):
            def __init__(self, option_strings, dest, new_flag=None, nargs=0, **kwargs):
                self.new_flag = new_flag
                super().__init__(option_strings, dest, nargs=nargs, **kwargs)

        class ServerArgs:
            @staticmethod
            def add_cli_args(parser):
                parser.add_argument("--model-path", "--model", required=True)
                parser.add_argument("--tp-size", "--tensor-parallel-size", type=int, default=1)
                parser.add_argument("--quantization", choices=["fp8", "awq"])
                parser.add_argument("--sampling-backend", choices={"pytorch", "flashinfer"})
                parser.add_argument("--enable-dp-attention", action=DeprecatedStoreTrueAction,
                                    new_flag="--attn-dp-size", help="Deprecated.")
                parser.add_argument("--old-cuda-graph", action=DeprecatedAction,
                                    error_message="Use --cuda-graph-config instead. Really.")
    """,
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def generate(engine: str, files: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    source = write_tree(tmp_path / "src", files)
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            str(GENERATOR),
            engine,
            "9.9.9",
            "--source",
            str(source),
            "--out",
            str(out),
            "--python",
            sys.executable,
            "--cache",
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"wrote {out / f'{engine}-9.9.9.json'}")
    assert not (tmp_path / "cache").exists(), "a --source run must not download or build a venv"
    return json.loads((out / f"{engine}-9.9.9.json").read_text(encoding="utf-8"))


def test_fake_vllm_schema(tmp_path: Path) -> None:
    schema = generate("vllm", FAKE_VLLM, tmp_path)
    assert schema["engine"] == "vllm" and schema["version"] == "9.9.9"
    assert schema["entry_point"] == "vllm serve"
    assert schema["generated_by"] == "scripts/gen_flag_schemas.py vllm 9.9.9 from source tree src"
    assert {"torch", "transformers"} <= set(schema["stubbed_modules"])
    assert "uvloop" not in schema["stubbed_modules"]
    assert schema["positionals"] == [
        {
            "dest": "model_tag",
            "nargs": "?",
            "choices": None,
            "default": None,
            "help": "The model tag to serve.",
        }
    ]
    options = {item["flags"][0]: item for item in schema["options"]}
    assert schema["option_count"] == len(options) == 8  # --help is left out
    # An engine class deriving from a stand-in is a real class with real instances.
    assert options["--max-model-len"]["default"] == 4096
    tp = options["--tensor-parallel-size"]
    assert tp["flags"] == ["--tensor-parallel-size", "-tp"]
    assert (tp["nargs"], tp["takes_value"], tp["boolean"], tp["default"]) == (None, True, False, 1)
    assert tp["help"] == "Number of tensor parallel groups."
    prefix = options["--enable-prefix-caching"]
    assert prefix["flags"] == ["--enable-prefix-caching", "--disable-prefix-caching"]
    assert prefix["hidden_flags"] == ["--no-enable-prefix-caching"]
    assert prefix["negative_flags"] == ["--disable-prefix-caching", "--no-enable-prefix-caching"]
    assert prefix["boolean"] and not prefix["takes_value"]
    assert options["--dtype"]["choices"] == ["auto", "bfloat16"]
    assert options["--kv-transfer-config"]["json"] == "object"
    assert options["--old-flag"]["deprecated"] is True
    device = options["--device"]
    assert device["default_is_repr"] is True and device["default"].startswith("<stub torch.")
    # Stand-ins answer `torch.cuda.is_available()` as a CPU-only box would.
    assert options["--device-kind"]["default"] == "cpu"


def test_fake_vllm_schema_drives_the_checker(tmp_path: Path) -> None:
    schema = schema_from_dict(generate("vllm", FAKE_VLLM, tmp_path))
    checked = check_against(
        schema,
        ["m", "-tp", "2", "--no-enable-prefix-caching", "--kv-transfer-config.kv_role", "kv_both"],
    )
    assert checked.positionals == ("m",)
    assert [item.flag for item in checked.flags] == [
        "--tensor-parallel-size",
        "--enable-prefix-caching",
        "--kv-transfer-config",
    ]
    with pytest.raises(
        FlagError,
        match=r"^--dtype float8 is not accepted by vllm 9\.9\.9; did you mean bfloat16\? choices: auto, bfloat16$",
    ):
        check_against(schema, ["m", "--dtype", "float8"])


def test_fake_sglang_schema(tmp_path: Path) -> None:
    raw = generate("sglang", FAKE_SGLANG, tmp_path)
    assert raw["entry_point"] == "python -m sglang.launch_server"
    assert {"torch", "triton"} <= set(raw["stubbed_modules"])
    options = {item["flags"][0]: item for item in raw["options"]}
    assert options["--model-path"]["flags"] == ["--model-path", "--model"]
    assert options["--model-path"]["required"] is True
    assert options["--sampling-backend"]["choices"] == ["flashinfer", "pytorch"]  # a set, sorted
    dp_attention = options["--enable-dp-attention"]
    assert dp_attention["deprecated"] is True and dp_attention["replacement"] == "--attn-dp-size"
    assert dp_attention["boolean"] is True
    assert options["--old-cuda-graph"]["error_on_use"] == "Use --cuda-graph-config instead."

    schema = schema_from_dict(raw)
    checked = check_against(schema, ["--model", "m", "--enable-dp-attention"])
    assert checked.deprecated == ("--enable-dp-attention",)
    with pytest.raises(FlagError) as caught:
        check_against(schema, ["--model-path", "m", "--old-cuda-graph"])
    assert str(caught.value) == (
        "--old-cuda-graph is rejected by sglang 9.9.9: Use --cuda-graph-config instead; "
        "remove it from the command line"
    )
