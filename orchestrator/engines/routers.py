"""The service in front of the engines: a PD router, or an nginx load balancer.

- vLLM PD: `vllm-router --vllm-pd-disaggregation --prefill URL --decode URL` (vLLM's fork of
  the SGLang router), image `vllm/vllm-router:v0.1.17`: pinned rather than `nightly`, so a
  re-render starts the same router whose flags the schema checked.
- SGLang PD: `python3 -m sglang_router.launch_router --pd-disaggregation --prefill URL
  BOOTSTRAP_PORT --decode URL` from the SGLang image itself (sglang-router 0.3.2 ships in it, and
  SGLang's docs and test fixtures launch it this way for every pinned version). `smg launch`, its
  successor, lives in a separate image and is not used.
- Several serve replicas: nginx `least_conn` on the endpoint port.

Fronts use host networking: they reach engines through ports published on each node's host
(loopback on their own node), the same way in a real deployment and in a rehearsal.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.engines.common import (
    NGINX_IMAGE,
    ROUTER_START_PERIOD_S,
    SIM_IMAGE,
    Argv,
    endpoint_port,
    finish,
    front_node,
    has_front,
    http_probe,
    is_disaggregated,
    public_endpoint,
    upstream_host,
)
from orchestrator.engines.sglang import bootstrap_port
from orchestrator.plan import Plan
from orchestrator.spec import Mount, ServiceSpec

VLLM_ROUTER_IMAGE = "vllm/vllm-router:v0.1.17"
VLLM_ROUTER = ("vllm-router", "0.1.17")
SGLANG_ROUTER = ("sglang-router", "0.3.2")
NGINX_CONF_TARGET = "/etc/nginx/nginx.conf"
# Relative mount sources are relative to the node's rendered directory (DIR/<node>/).
NGINX_CONF_SOURCE = "./nginx.conf"
HEALTH_PATH = "/health"


@dataclass(frozen=True)
class NginxUpstream:
    host: str
    port: int
    service: str


@dataclass(frozen=True)
class NginxSettings:
    listen: str
    upstreams: list[NginxUpstream]


def router_program(plan: Plan) -> tuple[str, str]:
    """(flag schema name, version) of the router a PD plan uses."""
    return VLLM_ROUTER if plan.engine.name == "vllm" else SGLANG_ROUTER


def build(plan: Plan, engines: list[ServiceSpec], simulate: bool) -> list[ServiceSpec]:
    if not has_front(plan):
        return []
    if is_disaggregated(plan):
        return [_router(plan, engines, simulate)]
    return [_load_balancer(plan, engines, simulate)]


def _heads(engines: list[ServiceSpec], role: str) -> list[ServiceSpec]:
    # Every service of the role that serves HTTP: rank 0 of each instance, and every node of
    # a hybrid-LB pool (vLLM). A Ray cluster's nodes serve none (process probes).
    return [spec for spec in engines if spec.role == role and spec.probe.kind == "http"]


def _url(plan: Plan, spec: ServiceSpec) -> str:
    assert spec.probe.port is not None
    return f"http://{upstream_host(plan, spec.node)}:{spec.probe.port}"


def _bind(plan: Plan) -> str:
    return "0.0.0.0" if public_endpoint(plan) else "127.0.0.1"


def _router(plan: Plan, engines: list[ServiceSpec], simulate: bool) -> ServiceSpec:
    argv = Argv()
    prefills, decodes = _heads(engines, "prefill"), _heads(engines, "decode")
    if plan.engine.name == "vllm":
        entrypoint = ["vllm-router"]
        image = VLLM_ROUTER_IMAGE
        argv.flag("--vllm-pd-disaggregation", origin="deploy", why="prefill/decode routing")
        if plan.request.kv_connector == "mooncake":
            argv.flag("--kv-connector", "mooncake", origin="user", why="--kv-connector mooncake")
        for spec in prefills:
            argv.flag(
                "--prefill",
                _url(plan, spec),
                origin="deploy",
                why=spec.name,
                extra=[spec.environment["VLLM_MOONCAKE_BOOTSTRAP_PORT"]]
                if plan.request.kv_connector == "mooncake"
                else None,
            )
    else:
        entrypoint = ["python3", "-m", "sglang_router.launch_router"]
        image = plan.engine.image
        argv.flag("--pd-disaggregation", origin="deploy", why="prefill/decode routing")
        for spec in prefills:
            argv.flag(
                "--prefill",
                _url(plan, spec),
                origin="deploy",
                why=spec.name,
                extra=[str(bootstrap_port(spec.replica))],
            )
    for spec in decodes:
        argv.flag("--decode", _url(plan, spec), origin="deploy", why=spec.name)
    port = endpoint_port(plan)
    argv.flag(
        "--host",
        _bind(plan),
        origin="deploy",
        why="public"
        if public_endpoint(plan)
        else "this node only; pass --public to listen on all interfaces",
    )
    argv.flag("--port", port, origin="deploy", why="the deployment's endpoint")
    spec = ServiceSpec(
        name="router",
        node=front_node(plan),
        role="router",
        image=SIM_IMAGE if simulate else image,
        entrypoint=entrypoint,
        command=argv.args,
        network_mode="host",
        ipc_mode="private",
        shm_size="64m",
        probe=http_probe(HEALTH_PATH, port, ROUTER_START_PERIOD_S),
        depends_on=[spec.name for spec in prefills + decodes],
        flags=argv.sources,
    )
    return finish(spec, plan)


def _load_balancer(plan: Plan, engines: list[ServiceSpec], simulate: bool) -> ServiceSpec:
    argv = Argv()
    argv.flag("-g", "daemon off;", origin="deploy", why="stay in the foreground")
    port = endpoint_port(plan)
    heads = _heads(engines, "serve")
    spec = ServiceSpec(
        name="lb",
        node=front_node(plan),
        role="lb",
        image=SIM_IMAGE if simulate else NGINX_IMAGE,
        entrypoint=["nginx"],
        command=argv.args,
        mounts=[Mount(source=NGINX_CONF_SOURCE, target=NGINX_CONF_TARGET, read_only=True)],
        network_mode="host",
        ipc_mode="private",
        shm_size="64m",
        probe=http_probe(HEALTH_PATH, port, ROUTER_START_PERIOD_S),
        depends_on=[spec.name for spec in heads],
        flags=argv.sources,
    )
    return finish(spec, plan)


def nginx_settings(plan: Plan, services: list[ServiceSpec]) -> NginxSettings | None:
    """What nginx.conf says, from the specs (the LB's upstreams are its dependencies)."""
    lb = next((spec for spec in services if spec.role == "lb"), None)
    if lb is None:
        return None
    by_name = {spec.name: spec for spec in services}
    upstreams = []
    for name in lb.depends_on:
        spec = by_name[name]
        assert spec.probe.port is not None
        host = upstream_host(plan, spec.node)
        upstreams.append(NginxUpstream(host=host, port=spec.probe.port, service=name))
    port = endpoint_port(plan)
    listen = str(port) if public_endpoint(plan) else f"127.0.0.1:{port}"
    return NginxSettings(listen=listen, upstreams=upstreams)
