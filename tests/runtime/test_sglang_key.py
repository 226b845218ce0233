"""SGLang's API key never reaches a command line: not `ps`, not `docker inspect`, not the
rendered files; `deploy logs` masks it where the engine logs its arguments."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.spec import LABEL_DEPLOYMENT

pytestmark = pytest.mark.docker

KEY = "sk-deploy-test-3c1f9a7e5b"
SIM_ENV = {"DEPLOY_SIM_LOAD_SECONDS": "0.3", "DEPLOY_SIM_WARMUP_SECONDS": "0.2"}


def _status(url: str, key: str | None) -> int:
    request = urllib.request.Request(url)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_sglang_key_is_off_every_command_line_and_masked_in_logs(
    docker_client: Any, sim_image: str, cli_runner: CliRunner, tmp_path: Path, deployment: str
) -> None:
    state_dir = tmp_path / "state"
    env = {**SIM_ENV, "DEPLOY_T_SGLANG_KEY": KEY}
    common = ["--name", deployment, "--state-dir", str(state_dir)]
    up = cli_runner.invoke(
        cli,
        [
            "up",
            "qwen3-8b",
            "--engine",
            "sglang",
            "--gpus",
            "1xH100",
            "--simulate",
            "--api-key-env",
            "DEPLOY_T_SGLANG_KEY",
            "--timeout",
            "120",
            *common,
        ],
        env=env,
        catch_exceptions=False,
    )
    try:
        assert up.exit_code == 0, up.output
        url = up.stdout.strip().rsplit(" ", 1)[-1]
        # The key protects the API: the wrapper handed it to the server.
        assert _status(f"{url}/v1/models", None) == 401
        assert _status(f"{url}/v1/models", KEY) == 200

        (container,) = docker_client.containers.list(
            filters={"label": f"{LABEL_DEPLOYMENT}={deployment}"}
        )
        container.reload()
        inspected = container.attrs
        argv_parts = [
            inspected["Path"],
            *inspected["Args"],
            *(inspected["Config"]["Cmd"] or []),
            *(inspected["Config"]["Entrypoint"] or []),
        ]
        assert not any(KEY in part for part in argv_parts)
        # Every process of the host, the server inside the container included.
        ps = subprocess.run(
            ["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
        assert "sglang.launch_server" in ps
        assert KEY not in ps
        top = container.top(ps_args="-eww -o pid,args")
        assert KEY not in json.dumps(top)

        # Nothing `deploy logs` shows holds it (the simulator never echoes a key; the masking
        # of an engine that does is the last test's).
        logs = cli_runner.invoke(cli, ["logs", *common], env=env, catch_exceptions=False)
        assert logs.exit_code == 0, logs.output
        assert "server_args=" in logs.stdout and KEY not in logs.stdout
        assert not any(
            KEY in p.read_text(errors="replace") for p in state_dir.rglob("*") if p.is_file()
        )
    finally:
        cli_runner.invoke(cli, ["down", *common], env=env)


def test_the_wrapper_refuses_to_serve_without_its_key(docker_client: Any, sim_image: str) -> None:
    from orchestrator.engines.sglang import KEY_ENTRYPOINT

    container = docker_client.containers.create(
        sim_image,
        entrypoint=KEY_ENTRYPOINT,
        command=["--model-path", "m"],
        environment={"SGLANG_API_KEY": "  "},
        network_mode="none",
        labels={LABEL_DEPLOYMENT: "t-sglang-key-wrapper"},
    )
    try:
        container.start()
        status = container.wait(timeout=60)
        assert status["StatusCode"] == 1
        assert b"refusing to serve without the API key" in container.logs()
    finally:
        container.remove(force=True)


def test_logs_mask_the_secret_an_engine_logs_with_its_arguments(
    docker_client: Any, sim_image: str, cli_runner: CliRunner, tmp_path: Path, deployment: str
) -> None:
    """An engine that logs its arguments, key and all (SGLang's `server_args=ServerArgs(...)`),
    shows `***` in `deploy logs`, also where the key is no longer exported."""
    from orchestrator.docker.endpoints import Endpoints
    from orchestrator.runtime.supervisor import Supervisor, SupervisorOptions
    from orchestrator.state import StateStore

    from .conftest import TEST_SERVER, local_node, server_spec

    store = StateStore(tmp_path / "state")
    echo = "import os\nprint('server_args=ServerArgs(api_key=%r)' % os.environ['SGLANG_API_KEY'])\n"
    spec = server_spec(
        "serve-0", sim_image, extra_env={"SGLANG_API_KEY": "${DEPLOY_T_LOG_KEY}"}
    ).model_copy(
        update={
            "entrypoint": ["python3", "-u", "-c", echo + TEST_SERVER],
            "secret_env": ["DEPLOY_T_LOG_KEY"],
        }
    )
    with Endpoints() as endpoints:
        Supervisor(
            deployment,
            [spec],
            [local_node()],
            store=store,
            endpoints=endpoints,
            options=SupervisorOptions(timeout_s=90, max_restarts=1, poll_s=0.2),
            host_env={"DEPLOY_T_LOG_KEY": KEY},
        ).up()
    (container,) = docker_client.containers.list(
        filters={"label": f"{LABEL_DEPLOYMENT}={deployment}"}
    )
    assert f"api_key='{KEY}'" in container.logs().decode(errors="replace")
    common = ["--name", deployment, "--state-dir", str(store.directory)]
    for env in ({"DEPLOY_T_LOG_KEY": KEY}, {"DEPLOY_T_LOG_KEY": None}):
        logs = cli_runner.invoke(cli, ["logs", *common], env=env, catch_exceptions=False)
        assert logs.exit_code == 0, logs.output
        assert "server_args=ServerArgs(api_key='***')" in logs.stdout
        assert KEY not in logs.stdout
