"""The probe container on each node: the engine service's container, running the probe.

`create_kwargs` (the one mapping from a `ServiceSpec` to Docker SDK arguments that `deploy up`
uses) gives the image, devices, GPUs, network mode, IPC, ulimits, shm, mounts and
environment; the doctor replaces only the name, labels, entrypoint and command, drops the
health check, and waives the runtime's CUDA requirement so that a too-old driver is reported
by the probe instead of refusing the start.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from orchestrator.runtime.containers import create_kwargs
from orchestrator.spec import LABEL_PREFIX, ServiceSpec, is_secret_ref

LABEL_DOCTOR = f"{LABEL_PREFIX}.doctor"
# The probe's source travels as `python3 -c SOURCE`: engine images do not carry deploy.
PROBE_SOURCE = (Path(__file__).parent / "probe.py").read_text(encoding="utf-8")
# Seconds a probe container keeps its listeners open for peers; it is removed sooner.
SERVE_SECONDS = 120


def probe_kwargs(
    spec: ServiceSpec,
    *,
    deployment: str,
    config: dict[str, Any],
    host_env: dict[str, str],
    with_gpus: bool,
    publish: bool,
) -> dict[str, Any]:
    kwargs = create_kwargs(
        spec, deployment=deployment, plan_hash="doctor", host_env=host_env, with_gpus=with_gpus
    )
    kwargs.pop("healthcheck", None)
    if not publish:
        kwargs.pop("ports", None)
    kwargs["name"] = f"deploy-doctor-{deployment}-{spec.node}-{uuid.uuid4().hex[:6]}"
    # Not the deployment's labels: `status` and `down` must never see a probe as a service.
    kwargs["labels"] = {LABEL_DOCTOR: deployment, f"{LABEL_PREFIX}.node": spec.node}
    kwargs["entrypoint"] = ["python3"]
    kwargs["command"] = ["-c", PROBE_SOURCE, "serve", json.dumps(config)]
    environment = dict(kwargs.get("environment", {}))
    # Secrets are not needed to look at the machine: neither passed-through secrets nor
    # plain variables that reference one (VLLM_API_KEY=${KEY}).
    for name in spec.secret_env:
        environment.pop(name, None)
    for name, value in spec.environment.items():
        if is_secret_ref(value, spec.secret_env):
            environment.pop(name, None)
    environment["NVIDIA_DISABLE_REQUIRE"] = "1"
    kwargs["environment"] = environment
    kwargs.pop("hostname", None) if spec.network_mode == "host" else None
    return kwargs


class ProbeFailed(Exception):
    """The probe container did not start or printed no facts."""


def read_facts(container: Any, timeout_s: float) -> dict[str, Any]:
    """The first line the probe prints (its facts), waiting on the log stream; the container
    exiting first, or `timeout_s` passing, is a `ProbeFailed` with its last output."""
    import threading

    result: dict[str, Any] = {}
    buffer = bytearray()

    def follow() -> None:
        try:
            for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
                buffer.extend(chunk)
                if b"\n" in buffer:
                    line = bytes(buffer).split(b"\n", 1)[0]
                    try:
                        result["facts"] = json.loads(line)
                    except ValueError:
                        result["error"] = line.decode(errors="replace")[-300:]
                    return
        except Exception as error:  # the daemon dropped the stream
            result["error"] = str(error)[:300]

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    reader.join(timeout_s)
    if "facts" in result:
        facts: dict[str, Any] = result["facts"]
        return facts
    tail = bytes(buffer).decode(errors="replace").strip().splitlines()[-3:]
    reason = result.get("error") or " / ".join(tail) or f"no output in {timeout_s:.0f} s"
    raise ProbeFailed(reason)


def connect_from(container: Any, targets: list[str]) -> dict[str, str]:
    """TCP connections from inside `container` to each `host:port`."""
    if not targets:
        return {}
    code, output = container.exec_run(
        ["python3", "-c", PROBE_SOURCE, "connect", ",".join(targets)], demux=False
    )
    text = (output or b"").decode(errors="replace").strip().splitlines()
    try:
        results: dict[str, str] = json.loads(text[-1]) if code == 0 and text else {}
    except ValueError:
        results = {}
    return {target: results.get(target, f"probe exited {code}") for target in targets}
