"""README sections built from the specs: what each node really runs and listens on, which
published recipes shaped the command lines, and which privileges and caches the containers get.

Presentation only: every fact here is read off the `ServiceSpec`s the renderers produced.
"""

from __future__ import annotations

from typing import Any

from orchestrator.plan import Plan
from orchestrator.spec import ServiceSpec

_ROLE_WORDS = {
    "serve": "serving engine",
    "prefill": "prefill engine",
    "decode": "decode engine",
    "router": "prefill/decode router",
    "lb": "nginx load balancer",
}


def _listen(spec: ServiceSpec) -> str:
    if spec.probe.kind != "http" or spec.probe.port is None:
        return "serves no HTTP (a worker rank)"
    if spec.network_mode == "bridge" and spec.ports:
        port = spec.ports[0]
        return f"listens on {port.host_ip}:{port.host} (published from the container)"
    host = _flag_value(spec, "--host") or spec.probe.host
    return f"listens on {host}:{spec.probe.port}"


def _flag_value(spec: ServiceSpec, flag: str) -> str | None:
    for source in spec.flags:
        if source.flag == flag:
            return source.value
    return None


def _what(spec: ServiceSpec, plan: Plan) -> str:
    words = _ROLE_WORDS[spec.role]
    if spec.role in ("router", "lb"):
        return words
    role = next((role for role in plan.roles if role.name == spec.role), None)
    nodes = 1
    if role is not None:
        replica = next((r for r in role.replicas if r.index == spec.replica), None)
        nodes = len(replica.slices) if replica is not None else 1
    if nodes > 1:
        return (
            f"{words}, instance {spec.replica}, node rank {spec.rank} of {nodes} "
            f"({'serves HTTP' if spec.rank == 0 else 'joins rank 0'})"
        )
    return f"{words}, instance {spec.replica} (independent of the other instances)"


def node_sections(plan: Plan, services: list[ServiceSpec]) -> list[dict[str, Any]]:
    """Per node, in cluster order: each service, what it is, its GPUs and where it listens."""
    order = [node.name for node in plan.hardware.node_list]
    address = {node.name: node.address for node in plan.hardware.node_list}
    names = sorted({spec.node for spec in services}, key=order.index)
    sections = []
    for name in names:
        rows = [
            {
                "name": spec.name,
                "what": _what(spec, plan),
                "gpus": ",".join(str(gpu) for gpu in spec.gpus) if spec.gpus else "-",
                "listen": _listen(spec),
                "privileged": spec.privileged,
            }
            for spec in services
            if spec.node == name
        ]
        sections.append({"node": name, "address": address[name], "rows": rows})
    return sections


def recipe_sources(services: list[ServiceSpec]) -> list[dict[str, str]]:
    """The published recipes applied anywhere in the deployment, once each."""
    from orchestrator.engines.recipes import load_recipes

    reasons = [
        source.why for spec in services for source in spec.flags if source.origin == "recipe"
    ]
    return [
        {"title": recipe.title, "source": recipe.source}
        for recipe in load_recipes()
        if any(f"({recipe.title}: {recipe.source})" in why for why in reasons)
    ]


def readme_extras(plan: Plan, services: list[ServiceSpec]) -> dict[str, Any]:
    from orchestrator.engines.jit_cache import JIT_CACHE_ROOT

    engines = [spec for spec in services if spec.role in ("serve", "prefill", "decode")]
    return {
        "node_sections": node_sections(plan, services),
        "recipes": recipe_sources(services),
        "privileged": sorted({spec.name for spec in services if spec.privileged}),
        "jit_cache_root": JIT_CACHE_ROOT,
        "jit_cached": any(
            mount.source.startswith(JIT_CACHE_ROOT) for spec in engines for mount in spec.mounts
        ),
        "instances_span_nodes": any(
            len(replica.slices) > 1 for role in plan.roles for replica in role.replicas
        ),
    }
