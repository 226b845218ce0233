"""`ServiceSpec` → Docker SDK kwargs: the one mapping `deploy up` relies on."""

from __future__ import annotations

from orchestrator.runtime.containers import (
    LABEL_GPUS,
    LABEL_GROUP,
    container_name,
    create_kwargs,
    missing_secrets,
    named_volumes,
)
from orchestrator.spec import (
    LABEL_DEPLOYMENT,
    LABEL_NODE,
    LABEL_PLAN_HASH,
    LABEL_RANK,
    LABEL_ROLE,
    LABEL_SERVICE,
    LABEL_SPEC_HASH,
    Mount,
    PortBinding,
    Probe,
    ServiceSpec,
)


def engine_spec(**changes: object) -> ServiceSpec:
    base: dict[str, object] = {
        "name": "serve-0-rank0",
        "node": "gpu-a",
        "role": "serve",
        "rank": 0,
        "image": "vllm/vllm-openai:v0.33.0",
        "command": ["Qwen/Qwen3-8B", "--tensor-parallel-size", "2", "--port", "8000"],
        "environment": {"VLLM_LOGGING_LEVEL": "INFO"},
        "secret_env": ["HF_TOKEN"],
        "ports": [PortBinding(container=8000, host=18000)],
        "gpus": [2, 3],
        "mounts": [
            Mount(source="/srv/hf", target="/root/.cache/huggingface"),
            Mount(source="models", target="/models", read_only=True),
        ],
        "devices": ["/dev/infiniband/uverbs0"],
        "ulimits": {"memlock": -1, "stack": 67108864},
        "cap_add": ["IPC_LOCK"],
        "probe": Probe(kind="http", path="/health", port=8000, start_period_s=1200),
        "labels": {"team": "inference"},
        "group": "serve-0",
    }
    base.update(changes)
    return ServiceSpec.model_validate(base)


def test_full_engine_spec_maps_to_every_docker_field() -> None:
    spec = engine_spec()
    kwargs = create_kwargs(
        spec,
        deployment="qwen",
        plan_hash="abc123",
        host_env={"HF_TOKEN": "hf_secret", "OTHER": "x"},
        network="deploy-qwen",
    )
    assert kwargs["image"] == "vllm/vllm-openai:v0.33.0"
    assert kwargs["name"] == "qwen-serve-0-rank0" == container_name("qwen", spec.name)
    assert "entrypoint" not in kwargs  # the image's own (vllm serve) is kept
    assert kwargs["command"] == ["Qwen/Qwen3-8B", "--tensor-parallel-size", "2", "--port", "8000"]
    assert kwargs["environment"] == {"VLLM_LOGGING_LEVEL": "INFO", "HF_TOKEN": "hf_secret"}
    assert kwargs["ports"] == {"8000/tcp": ("127.0.0.1", 18000)}
    assert kwargs["device_requests"] == [
        {"driver": "nvidia", "device_ids": ["2", "3"], "capabilities": [["gpu"]]}
    ]
    assert kwargs["volumes"] == {
        "/srv/hf": {"bind": "/root/.cache/huggingface", "mode": "rw"},
        "models": {"bind": "/models", "mode": "ro"},
    }
    assert kwargs["devices"] == ["/dev/infiniband/uverbs0"]
    assert kwargs["ulimits"] == [
        {"name": "memlock", "soft": -1, "hard": -1},
        {"name": "stack", "soft": 67108864, "hard": 67108864},
    ]
    assert kwargs["cap_add"] == ["IPC_LOCK"]
    assert kwargs["ipc_mode"] == "host"
    assert "shm_size" not in kwargs  # ignored by Docker with the host IPC namespace
    assert kwargs["privileged"] is False
    # The spec's policy, as the compose file states it (single containers: Docker's).
    assert kwargs["restart_policy"] == {"Name": "unless-stopped"}
    assert kwargs["network"] == "deploy-qwen"
    assert kwargs["hostname"] == "serve-0-rank0"
    labels = kwargs["labels"]
    assert labels[LABEL_DEPLOYMENT] == "qwen"
    assert labels[LABEL_SERVICE] == "serve-0-rank0"
    assert labels[LABEL_ROLE] == "serve"
    assert labels[LABEL_NODE] == "gpu-a"
    assert labels[LABEL_RANK] == "0"
    assert labels[LABEL_PLAN_HASH] == "abc123"
    assert labels[LABEL_SPEC_HASH] == spec.spec_hash()
    assert labels[LABEL_GROUP] == "serve-0"
    assert labels[LABEL_GPUS] == "2,3"
    assert labels["team"] == "inference"
    health = kwargs["healthcheck"]
    assert health["test"][:2] == ["CMD", "python3"]
    assert "http://127.0.0.1:8000/health" in health["test"][3]
    assert health["start_period"] == 1200 * 10**9
    assert health["interval"] == 10 * 10**9
    assert health["retries"] == 3


def test_secret_values_never_reach_labels_and_missing_ones_are_reported() -> None:
    spec = engine_spec()
    kwargs = create_kwargs(spec, deployment="d", plan_hash="h", host_env={"HF_TOKEN": "hf_x"})
    assert "hf_x" not in repr(kwargs["labels"])
    without = create_kwargs(spec, deployment="d", plan_hash="h", host_env={})
    assert "HF_TOKEN" not in without["environment"]
    assert missing_secrets(spec, {}) == ["HF_TOKEN"]
    assert missing_secrets(spec, {"HF_TOKEN": ""}) == []


def test_api_key_references_are_resolved_for_the_docker_api_only() -> None:
    # vLLM reads the key from VLLM_API_KEY=${VAR}; SGLang takes --api-key ${VAR}. The spec keeps
    # the reference (it is written to compose files and state); the Docker call gets the value.
    vllm = engine_spec(
        environment={"VLLM_API_KEY": "${SERVE_KEY}"}, secret_env=["HF_TOKEN", "SERVE_KEY"]
    )
    sglang = engine_spec(
        command=["--model-path", "m", "--api-key", "${SERVE_KEY}"],
        secret_env=["HF_TOKEN", "SERVE_KEY"],
    )
    host = {"SERVE_KEY": "sk-live", "HF_TOKEN": "hf_x"}
    vllm_kwargs = create_kwargs(vllm, deployment="d", plan_hash="h", host_env=host)
    sglang_kwargs = create_kwargs(sglang, deployment="d", plan_hash="h", host_env=host)
    assert vllm_kwargs["environment"]["VLLM_API_KEY"] == "sk-live"
    assert sglang_kwargs["command"] == ["--model-path", "m", "--api-key", "sk-live"]
    assert "${SERVE_KEY}" in vllm.environment.values()
    assert "sk-live" not in repr(vllm_kwargs["labels"]) + repr(sglang_kwargs["labels"])


def test_host_network_headless_rank_publishes_nothing_and_has_no_http_healthcheck() -> None:
    spec = engine_spec(
        name="serve-0-rank1",
        rank=1,
        network_mode="host",
        ports=[],
        probe=Probe(kind="process", start_period_s=1200),
        privileged=True,
        entrypoint=["vllm", "serve"],
    )
    kwargs = create_kwargs(spec, deployment="d", plan_hash="h", host_env={}, network="ignored")
    assert kwargs["network_mode"] == "host"
    assert "network" not in kwargs and "ports" not in kwargs and "hostname" not in kwargs
    assert "healthcheck" not in kwargs
    assert kwargs["privileged"] is True
    assert kwargs["entrypoint"] == ["vllm", "serve"]
    assert kwargs["labels"][LABEL_RANK] == "1"


def test_simulated_runs_drop_the_gpu_request_but_keep_the_ids_in_a_label() -> None:
    spec = engine_spec()
    kwargs = create_kwargs(spec, deployment="d", plan_hash="h", host_env={}, with_gpus=False)
    assert "device_requests" not in kwargs
    assert kwargs["labels"][LABEL_GPUS] == "2,3"
    cpu_only = create_kwargs(engine_spec(gpus=None), deployment="d", plan_hash="h", host_env={})
    assert "device_requests" not in cpu_only and LABEL_GPUS not in cpu_only["labels"]


def test_private_ipc_keeps_shm_size_and_named_volumes_are_told_from_paths() -> None:
    spec = engine_spec(ipc_mode="private", shm_size="32g")
    kwargs = create_kwargs(spec, deployment="d", plan_hash="h", host_env={})
    assert kwargs["ipc_mode"] == "private"
    assert kwargs["shm_size"] == "32g"
    assert named_volumes(spec) == ["models"]


def test_spec_hash_label_changes_only_with_the_spec() -> None:
    a = create_kwargs(engine_spec(), deployment="d", plan_hash="h1", host_env={})
    b = create_kwargs(engine_spec(labels={"x": "y"}), deployment="d", plan_hash="h2", host_env={})
    c = create_kwargs(engine_spec(command=["other"]), deployment="d", plan_hash="h1", host_env={})
    assert a["labels"][LABEL_SPEC_HASH] == b["labels"][LABEL_SPEC_HASH]
    assert a["labels"][LABEL_SPEC_HASH] != c["labels"][LABEL_SPEC_HASH]


def test_only_engines_get_a_docker_healthcheck() -> None:
    router = engine_spec(name="router", role="router", gpus=None, group=None)
    assert "healthcheck" not in create_kwargs(router, deployment="d", plan_hash="h", host_env={})


def test_mount_sources_are_expanded_like_compose_and_rendered_files_are_copied_in() -> None:
    from pathlib import Path

    from orchestrator.runtime.containers import expand_source, rendered_files

    env = {"HOME": "/home/ops", "HF_HOME": "/data/hf"}
    assert expand_source("${HF_HOME:-~/.cache/huggingface}", env) == "/data/hf"
    assert expand_source("${HF_HOME:-~/.cache/huggingface}", {"HOME": "/home/ops"}) == (
        "/home/ops/.cache/huggingface"
    )
    assert expand_source("$HOME/models", env) == "/home/ops/models"
    lb = engine_spec(
        name="lb",
        role="lb",
        gpus=None,
        mounts=[Mount(source="./nginx.conf", target="/etc/nginx/nginx.conf", read_only=True)],
    )
    kwargs = create_kwargs(lb, deployment="d", plan_hash="h", host_env=env)
    assert "volumes" not in kwargs  # copied into the container instead of bind-mounted
    assert rendered_files(lb, Path("/state/d")) == [
        (Path("/state/d/gpu-a/nginx.conf"), "/etc/nginx/nginx.conf")
    ]


def test_file_archive_carries_parent_directories(tmp_path: object) -> None:
    import io
    import tarfile
    from pathlib import Path

    from orchestrator.runtime.containers import file_archive

    source = Path(str(tmp_path)) / "nginx.conf"
    source.write_text("events {}\n")
    with tarfile.open(fileobj=io.BytesIO(file_archive(source, "/etc/nginx/nginx.conf"))) as tar:
        members = [(m.name, m.isdir()) for m in tar.getmembers()]
        data = tar.extractfile("etc/nginx/nginx.conf")
        assert data is not None and data.read() == b"events {}\n"
    assert members == [("etc", True), ("etc/nginx", True), ("etc/nginx/nginx.conf", False)]


def test_docker_errors_mid_command_become_one_line_naming_the_command_to_rerun() -> None:
    import docker.errors
    import pytest
    import requests

    from orchestrator.docker.ops import docker_errors_as_failures
    from orchestrator.errors import RuntimeFailure

    with (
        pytest.raises(RuntimeFailure) as lost,
        docker_errors_as_failures("deploy status", "deploy status"),
    ):
        raise requests.exceptions.ConnectionError("Connection aborted.\nmore detail")
    assert str(lost.value) == (
        "lost the Docker daemon while running deploy status: Connection aborted.; "
        "check that dockerd is running, then run `deploy status` again"
    )
    with pytest.raises(RuntimeFailure) as refused, docker_errors_as_failures("qwen"):
        raise docker.errors.APIError("500 Server Error", explanation="no space left")
    assert str(refused.value) == (
        "Docker refused an operation for qwen: no space left; "
        "check the daemon's log, then run `deploy up` again"
    )
