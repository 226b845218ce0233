"""What the node's Docker endpoint says: reachable and its API version, a GPU runtime
(the NVIDIA container runtime or CDI devices), and whether the image is already there."""

from __future__ import annotations

from orchestrator.doctor.context import NodeContext
from orchestrator.doctor.report import Check, failed, passed, skipped, warned


def docker_checks(context: NodeContext) -> list[Check]:
    node, facts = context.node, context.docker
    if facts.error is not None:
        return [failed(node, "docker", facts.error, _docker_fix(context))]
    checks = [
        passed(
            node,
            "docker",
            f"Docker {facts.version} (API {facts.api_version}) at {context.target.docker}",
        )
    ]
    checks.append(_runtime(context))
    checks.append(_image(context))
    return checks


def _docker_fix(context: NodeContext) -> str:
    endpoint = context.target.docker
    if endpoint.startswith("ssh://"):
        return f"check that `docker -H {endpoint} info` works from this machine (keys, agent)"
    if endpoint.startswith("tcp://"):
        return f"check that dockerd on node {context.node} listens at {endpoint} and no firewall blocks it"
    return f"start dockerd on node {context.node} (systemctl start docker) and check the socket"


def _runtime(context: NodeContext) -> Check:
    node, facts = context.node, context.docker
    if context.simulate:
        return skipped(node, "gpu-runtime", "not needed in a rehearsal (--simulate)")
    if not context.target.gpus:
        return skipped(node, "gpu-runtime", "no GPU service on this node")
    if "nvidia" in facts.runtimes:
        return passed(node, "gpu-runtime", "NVIDIA container runtime registered")
    if facts.cdi_spec_dirs:
        return passed(node, "gpu-runtime", f"CDI specs in {', '.join(facts.cdi_spec_dirs)}")
    return failed(
        node,
        "gpu-runtime",
        f"no NVIDIA runtime and no CDI devices (runtimes: {', '.join(facts.runtimes) or 'none'})",
        f"install the NVIDIA container toolkit on node {node} and run"
        " `nvidia-ctk runtime configure --runtime=docker`, then restart dockerd",
    )


def _image(context: NodeContext) -> Check:
    node, facts = context.node, context.docker
    if facts.image_present:
        return passed(node, "image", f"{context.image} present")
    return warned(
        node,
        "image",
        f"{context.image} is not on the node yet",
        f"pull it before `deploy up` (docker -H {context.target.docker} pull {context.image}):"
        " a pull of an engine image takes minutes",
    )
