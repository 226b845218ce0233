"""Hostile text (shell metacharacters, quotes, newlines, YAML specials) renders safely, and no
rendered file or spec holds a secret value.

The launch scripts are run for real with stand-ins for `docker`, `vllm` and `python3` that
record their argv, so the test sees exactly what a shell would pass."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from orchestrator.engines import build_services
from orchestrator.plan import ModelSummary, Plan
from orchestrator.spec import ServiceSpec
from orchestrator.targets.compose.render import render_deployment, shell_argv, yaml_str

from .conftest import scenario

HOSTILE = (
    "a $(touch pwned) `id` ${HOME} $$ 'single' \"double\"\nnew: line #{*} & | ; < > \\ \t-x yes"
)
YAML_SPECIALS = [
    "yes",
    "no",
    "on",
    "off",
    "null",
    "~",
    "1e3",
    "0x1F",
    "-leading",
    ": colon",
    "#hash",
    "{flow}",
    "[list]",
    "*alias",
    "&anchor",
    "!tag",
    "%pct",
    "@at",
    "`tick",
    "multi\nline",
    "tab\tin",
    "\u2028sep",
    "\x85nel",
    "\x7fdel",
    'quote"s',
    "é ü 字",
]
HF_TOKEN_VALUE = "hf_SECRETtokenVALUE123"
API_KEY_VALUE = "sk-SECRETkeyVALUE456"
RECORDER = '#!/bin/sh\nprintf \'%s\\0\' "$0" "$@" > "$RECORD_FILE"\n'


def hostile_plan(engine: str, layout: str = "1gpu", local: bool = True) -> Plan:
    base = scenario(engine, layout)
    model = ModelSummary(
        **{
            **base.model.model_dump(),
            "name": "m'o\"d $x `y` #z",
            "id": "/srv/models/my model $v 'q'" if local else base.model.id,
            "local_path": "/srv/models/my model $v 'q'" if local else None,
        }
    )
    return scenario(
        engine,
        layout,
        name="dep " + HOSTILE,
        model_summary=model,
        request={
            "engine_args": ["--chat-template", HOSTILE],
            "api_key_env": "MY_API_KEY",
        },
    )


@pytest.mark.parametrize("value", [HOSTILE, *YAML_SPECIALS])
def test_yaml_str_round_trips_any_string(value: str) -> None:
    assert yaml.safe_load(f"key: {yaml_str(value)}\n") == {"key": value}


@pytest.mark.parametrize("value", [HOSTILE, *YAML_SPECIALS])
def test_shell_argv_round_trips_through_shlex(value: str) -> None:
    import shlex

    words = ["prog", value, "--flag", value]
    assert shlex.split(shell_argv(words)) == words


def _docker_compose_config(path: Path) -> dict:  # type: ignore[type-arg]
    program = shutil.which("docker-compose")
    if program is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose)")
    result = subprocess.run(
        [program, "-f", str(path), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HF_TOKEN": HF_TOKEN_VALUE, "MY_API_KEY": API_KEY_VALUE},
    )
    assert result.returncode == 0, result.stderr
    loaded: dict = yaml.safe_load(result.stdout)  # type: ignore[type-arg]
    return loaded


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_compose_values_survive_yaml_and_interpolation(engine: str, tmp_path: Path) -> None:
    plan = hostile_plan(engine)
    services = build_services(plan)
    render_deployment(plan, services, tmp_path)
    spec = services[0]
    path = tmp_path / spec.node / "compose.yaml"
    raw = yaml.safe_load(path.read_text())["services"][spec.name]
    # In the file, literal dollars are doubled (compose would interpolate them otherwise)...
    assert raw["labels"]["ai.deploy.deployment"] == plan.name.replace("$", "$$")
    # ...and compose itself turns them back into exactly the spec's values. (`config` prints a
    # compose file again, so it doubles dollars once more: undo that to read its values.)
    loaded = _unescape(_docker_compose_config(path)["services"][spec.name])
    expected = [API_KEY_VALUE if word == "${MY_API_KEY}" else word for word in spec.command]
    assert loaded["command"] == expected
    assert loaded["entrypoint"] == spec.entrypoint
    assert loaded["labels"]["ai.deploy.deployment"] == plan.name
    assert isinstance(loaded, dict)
    # The model directory uses the long syntax (its path may hold ':'); the cache the short one.
    mounts = {v["target"]: v["source"] for v in loaded["volumes"] if isinstance(v, dict)}
    assert mounts["/models/my model $v 'q'"] == "/srv/models/my model $v 'q'"


def _unescape(value: object) -> object:
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [_unescape(item) for item in value]
    if isinstance(value, dict):
        return {key: _unescape(item) for key, item in value.items()}
    return value


def _record(tmp_path: Path, program: str) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / program
    stub.write_text(RECORDER)
    stub.chmod(0o755)
    record = tmp_path / f"{program}.argv"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "RECORD_FILE": str(record),
        "HF_TOKEN": HF_TOKEN_VALUE,
        "MY_API_KEY": API_KEY_VALUE,
    }
    return env, record


def _argv(record: Path) -> list[str]:
    return record.read_bytes().decode().split("\0")[1:-1]


def _expected(spec: ServiceSpec, *, bare: bool) -> list[str]:
    argv = [*(spec.entrypoint or [])[1:], *spec.command]
    argv = [API_KEY_VALUE if word == "${MY_API_KEY}" else word for word in argv]
    if bare:
        argv = [
            word.replace("/models/my model $v 'q'", "/srv/models/my model $v 'q'")
            if word.startswith("/models/")
            else word
            for word in argv
        ]
        argv = [
            "127.0.0.1" if prev == "--host" else word
            for prev, word in zip(["", *argv[:-1]], argv, strict=True)
        ]
    return argv


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_launch_script_passes_exact_argv_to_bare_metal_engine(engine: str, tmp_path: Path) -> None:
    plan = hostile_plan(engine)
    services = build_services(plan)
    out = tmp_path / "out"
    render_deployment(plan, services, out)
    spec = services[0]
    program = (spec.entrypoint or [])[0]
    env, record = _record(tmp_path, program)
    script = out / spec.node / "launch.sh"
    assert subprocess.run(["bash", "-n", str(script)], timeout=30).returncode == 0
    result = subprocess.run(
        ["bash", str(script), "bare", spec.name],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert _argv(record) == _expected(spec, bare=True)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_launch_script_passes_exact_argv_to_docker(engine: str, tmp_path: Path) -> None:
    plan = hostile_plan(engine)
    services = build_services(plan)
    out = tmp_path / "out"
    render_deployment(plan, services, out)
    spec = services[0]
    env, record = _record(tmp_path, "docker")
    result = subprocess.run(
        ["bash", str(out / spec.node / "launch.sh"), "docker"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    argv = _argv(record)
    image = argv.index(spec.image)
    assert argv[image + 1 :] == _expected(spec, bare=False)
    assert argv[argv.index("--entrypoint") + 1] == (spec.entrypoint or [])[0]
    labels = [argv[i + 1] for i, word in enumerate(argv) if word == "--label"]
    assert f"ai.deploy.deployment={plan.name}" in labels
    assert "/srv/models/my model $v 'q':/models/my model $v 'q':ro" in argv
    # Secrets reach docker by reference: HF_TOKEN passes through by name; the API key is
    # expanded by the shell at run time, never written into the script.
    assert argv[argv.index("HF_TOKEN") - 1] == "--env"
    if engine == "vllm":
        assert f"VLLM_API_KEY={API_KEY_VALUE}" in argv


def test_launch_script_refuses_to_start_without_the_api_key(tmp_path: Path) -> None:
    plan = hostile_plan("vllm")
    out = tmp_path / "out"
    render_deployment(plan, build_services(plan), out)
    env, _ = _record(tmp_path, "docker")
    del env["MY_API_KEY"]
    result = subprocess.run(
        ["bash", str(out / "gpu-a" / "launch.sh")],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode != 0
    assert "MY_API_KEY" in result.stderr


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
@pytest.mark.parametrize("layout", ["pd2node", "replicas", "2node"])
@pytest.mark.parametrize("simulate", [False, True])
def test_no_rendered_file_or_spec_holds_a_secret(
    engine: str, layout: str, simulate: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN_VALUE)
    monkeypatch.setenv("MY_API_KEY", API_KEY_VALUE)
    monkeypatch.setenv("VLLM_API_KEY", API_KEY_VALUE)
    plan = scenario(engine, layout, request={"api_key_env": "MY_API_KEY"})
    services = build_services(plan, simulate=simulate)
    files = render_deployment(plan, services, tmp_path)
    assert len(files) >= 5
    for path in files:
        text = path.read_text()
        assert HF_TOKEN_VALUE not in text, path
        assert API_KEY_VALUE not in text, path
    dumped = json.dumps([spec.model_dump(mode="json") for spec in services])
    assert HF_TOKEN_VALUE not in dumped and API_KEY_VALUE not in dumped
    env_example = (tmp_path / ".env.example").read_text()
    assert "HF_TOKEN=\n" in env_example and "MY_API_KEY=\n" in env_example
    # The key is still wired: by reference.
    engines = [
        spec for spec in services if spec.role in ("serve", "prefill", "decode") and spec.rank == 0
    ]
    for spec in engines:
        assert "MY_API_KEY" in spec.secret_env
        if engine == "vllm":
            assert spec.environment["VLLM_API_KEY"] == "${MY_API_KEY}"
        else:
            # SGLang takes the key only as a flag: its wrapper reads SGLANG_API_KEY instead.
            assert spec.environment["SGLANG_API_KEY"] == "${MY_API_KEY}"
            assert "--api-key" not in spec.command
