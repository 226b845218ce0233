"""The probe container is the engine service's container (same SDK arguments as `deploy up`
gives it) with the probe as its command, no secrets, and labels that `status`/`down` ignore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.doctor.containers import LABEL_DOCTOR, PROBE_SOURCE, probe_kwargs
from orchestrator.runtime.containers import create_kwargs
from orchestrator.spec import LABEL_DEPLOYMENT, secret_ref


def test_same_container_as_the_service_with_the_probe_inside(
    planned: Any, two_node_ib: Path
) -> None:
    plan, services = planned(
        model="llama-3.1-405b", cluster=two_node_ib, nodes=2, api_key_env="SERVE_KEY"
    )
    spec = services[0]
    spec = spec.model_copy(
        update={"environment": {**spec.environment, "VLLM_API_KEY": secret_ref("SERVE_KEY")}}
    )
    host_env = {"HF_TOKEN": "hf_secret", "SERVE_KEY": "key_secret", "HOME": "/root"}
    service = create_kwargs(spec, deployment=plan.name, plan_hash="x", host_env=host_env)
    probe = probe_kwargs(
        spec,
        deployment=plan.name,
        config={"listen": [29501]},
        host_env=host_env,
        with_gpus=True,
        publish=True,
    )
    for key in ("image", "device_requests", "devices", "ulimits", "ipc_mode", "cap_add"):
        assert probe[key] == service[key], key
    assert probe["network_mode"] == service["network_mode"] == "host"
    assert probe["volumes"] == service["volumes"]
    assert probe["entrypoint"] == ["python3"]
    assert probe["command"][:3] == ["-c", PROBE_SOURCE, "serve"]
    assert "healthcheck" not in probe
    assert probe["labels"][LABEL_DOCTOR] == plan.name and LABEL_DEPLOYMENT not in probe["labels"]
    values = set(probe["environment"].values())
    assert "hf_secret" not in values and "key_secret" not in values
    assert probe["environment"]["NVIDIA_DISABLE_REQUIRE"] == "1"
    assert probe["environment"]["NCCL_IB_HCA"] == service["environment"]["NCCL_IB_HCA"]
