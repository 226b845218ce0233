"""What every engine service shares: ports, volumes, environment, probes, labels, RDMA.

The engine modules (`vllm.py`, `sglang.py`, `routers.py`) decide the command line; this module
decides everything around it, so a vLLM and an SGLang service of the same plan differ only in
what the engines themselves need.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from orchestrator.engines.cold_start import download_s
from orchestrator.engines.jit_cache import jit_cache_mounts
from orchestrator.engines.network_env import rdma_environment
from orchestrator.engines.privileges import runs_deepep
from orchestrator.errors import PlanError
from orchestrator.group_health import group_peer, peer_check_command, restart_policy
from orchestrator.plan import NodeSummary, Plan, Replica, Role
from orchestrator.spec import (
    LABEL_DEPLOYMENT,
    LABEL_NODE,
    LABEL_PLAN_HASH,
    LABEL_RANK,
    LABEL_REPLICA,
    LABEL_ROLE,
    LABEL_SERVICE,
    LABEL_SPEC_HASH,
    FlagOrigin,
    FlagSource,
    Mount,
    PortBinding,
    Probe,
    ServiceSpec,
)

SIM_IMAGE = "deploy-sim:latest"
NGINX_IMAGE = "nginx:1.27-alpine"

# The host's Hugging Face home, as a compose interpolation (and `expand_host_path` for the SDK).
HF_CACHE_SOURCE = "${HF_HOME:-~/.cache/huggingface}"
HF_CACHE_TARGET = "/root/.cache/huggingface"
# A local model directory appears at this path in the container, read-only.
MODELS_TARGET = "/models"

# Ports. The endpoint users call is the engine's conventional port; engines behind a front
# (router or load balancer) move to role blocks above it, so several services share a node
# without collisions and the numbers say which role a port belongs to (8100 prefill, 8200
# decode, as in the NIXL examples).
ROLE_PORT_OFFSET = {"serve": 1, "prefill": 100, "decode": 200}
ROLE_SLOT = {"serve": 0, "prefill": 1, "decode": 2}

# Start period = weights read at a conservative rate, plus engine start, plus CUDA graph
# capture / compilation, plus SGLang's warmup request, plus multi-node rendezvous. The read
# rate is a cold network filesystem or a single disk, not a warm page cache: a probe that gives
# up too early turns a slow load into a restart loop, which is far worse than a late alarm.
LOAD_RATE_GIB_PER_S = 0.25
ENGINE_START_S = 60
CUDA_GRAPHS_S = 90
SGLANG_WARMUP_S = 60
MULTI_NODE_RENDEZVOUS_S = 60
ROUTER_START_PERIOD_S = 60

# RDMA registers (pins) memory: unlimited locked memory and IPC_LOCK; the stack size is the one
# the SGLang and vLLM RDMA examples use.
RDMA_ULIMITS = {"memlock": -1, "stack": 67108864}
RDMA_DEVICES = ("/dev/infiniband",)

_HOST_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}(.*)$")


# --------------------------------------------------------------------------------------------
# Command lines with provenance


@dataclass
class Argv:
    """An argv under construction that remembers where each flag came from."""

    items: list[tuple[list[str], FlagSource]] = field(default_factory=list)

    @property
    def args(self) -> list[str]:
        return [token for tokens, _ in self.items for token in tokens]

    @property
    def sources(self) -> list[FlagSource]:
        return [source for _, source in self.items]

    def positional(self, value: str, origin: FlagOrigin, why: str, label: str) -> None:
        self.items.append(([value], FlagSource(flag=label, value=value, origin=origin, why=why)))

    def flag(
        self,
        name: str,
        value: str | int | float | None = None,
        *,
        origin: FlagOrigin,
        why: str = "",
        extra: list[str] | None = None,
    ) -> None:
        """Add `--name [value] [extra...]`; `value` None makes a boolean switch."""
        values = ([] if value is None else [str(value)]) + list(extra or [])
        shown = " ".join(values) if values else None
        source = FlagSource(flag=name, value=shown, origin=origin, why=why)
        self.items.append(([name, *values], source))


# A Ray node of a vLLM instance runs `ray start` in the engine image: Ray's command line, not
# the engine's, so no engine flag schema applies to it.
RAY_ENTRYPOINT = ("ray",)


def runs_engine(spec: ServiceSpec) -> bool:
    """Whether the service's command line is the engine's own (checked by its flag schema)."""
    return tuple(spec.entrypoint or ()) != RAY_ENTRYPOINT


def split_user_args(args: list[str]) -> list[list[str]]:
    """Group user extras as [flag, values...]; a `--flag=value` stays one token."""
    groups: list[list[str]] = []
    for token in args:
        if (token.startswith("-") and not _is_number(token)) or not groups:
            groups.append([token])
        else:
            groups[-1].append(token)
    return groups


def flag_name(token: str) -> str:
    return token.split("=", 1)[0]


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def apply_user_args(argv: Argv, user_args: list[str], managed: frozenset[str]) -> Argv:
    """Append the user's extra flags. A user flag replaces a tuning flag deploy set (the user
    knows better); flags that wire the deployment together are refused, because changing one
    alone breaks the others (ports, ranks, rendezvous, disaggregation roles)."""
    from orchestrator.errors import FlagError

    groups = split_user_args(user_args)
    names = {flag_name(group[0]) for group in groups}
    clashes = sorted(names & managed)
    if clashes:
        raise FlagError(
            f"{clashes[0]} is set by deploy for this layout and cannot be passed with --engine-arg",
            "use the matching deploy option (--tp, --public, --api-key-env, ...) instead",
        )
    kept = Argv([item for item in argv.items if item[1].flag not in names])
    for group in groups:
        head = group[0]
        values = ([head.split("=", 1)[1]] if "=" in head else []) + group[1:]
        source = FlagSource(
            flag=flag_name(head),
            value=" ".join(values) if values else None,
            origin="user",
            why="--engine-arg",
        )
        kept.items.append((list(group), source))
    return kept


# --------------------------------------------------------------------------------------------
# Where things run


def node_summary(plan: Plan, name: str) -> NodeSummary:
    for node in plan.hardware.node_list:
        if node.name == name:
            return node
    raise PlanError(f"the plan places a service on unknown node {name!r}", "re-run deploy plan")


def plan_nodes(plan: Plan) -> list[str]:
    """Nodes the plan uses, in cluster order."""
    used = {s.node for role in plan.roles for r in role.replicas for s in r.slices}
    return [node.name for node in plan.hardware.node_list if node.name in used]


def is_multi_node(plan: Plan) -> bool:
    return plan.placed().spans_nodes


def is_disaggregated(plan: Plan) -> bool:
    return plan.role("prefill") is not None and plan.role("decode") is not None


def engine_roles(plan: Plan) -> list[Role]:
    order = {"prefill": 0, "decode": 1, "serve": 2}
    roles = [role for role in plan.roles if role.name in order]
    return sorted(roles, key=lambda role: order[role.name])


def has_front(plan: Plan) -> bool:
    """A router (PD) or a load balancer (several serve replicas) takes the endpoint port."""
    if is_disaggregated(plan):
        return True
    serve = plan.role("serve")
    return serve is not None and len(serve.replicas) > 1


def endpoint_port(plan: Plan) -> int:
    router = plan.role("router")
    if router is not None and router.port is not None:
        return router.port
    serve = plan.role("serve")
    if serve is not None and serve.port is not None and not has_front(plan):
        return serve.port
    if plan.request.port is not None:
        return plan.request.port
    from orchestrator.engines.versions import release

    return release(plan.engine.name, plan.engine.version).port.value


def engine_port(plan: Plan, role: Role, replica: Replica) -> int:
    """The HTTP port of one engine instance (its rank 0)."""
    if not has_front(plan):
        return endpoint_port(plan)
    base = role.port if role.port is not None else endpoint_port(plan) + ROLE_PORT_OFFSET[role.name]
    return base + replica.index


def front_node(plan: Plan) -> str:
    """Where the router or load balancer runs: the planner's choice (`Plan.layout`)."""
    return plan.placed().front_node


def upstream_host(plan: Plan, engine_node: str) -> str:
    """The address a front uses to reach an engine: loopback on its own node, else the node's
    address. Fronts use host networking, so both reach ports published on the host, in a real
    deployment and in a rehearsal alike. A PD router also hands the prefill address to decode
    instances (SGLang's bootstrap host): across nodes that must be a routable address."""
    if engine_node == front_node(plan) and not cross_node_disaggregation(plan):
        return "127.0.0.1"
    node = node_summary(plan, engine_node)
    if is_placeholder_address(node):
        from orchestrator.errors import InputError

        raise InputError(
            f"the front on {front_node(plan)} needs the address of node {node.name}, and "
            "--nodes without a cluster file names it only by a placeholder that nginx and the "
            "router cannot resolve",
            "pass --cluster FILE with each node's address (see profiles/clusters/)",
        )
    return node.address


def is_placeholder_address(node: NodeSummary) -> bool:
    """The stand-in `--gpus ... --nodes N` gives a node without a cluster file: its address is
    its generated name (node1, node2, ...), which no resolver knows."""
    return node.address == node.name and re.fullmatch(r"node[0-9]+", node.name) is not None


def cross_node_disaggregation(plan: Plan) -> bool:
    return is_disaggregated(plan) and is_multi_node(plan)


def public_endpoint(plan: Plan) -> bool:
    """The endpoint users reach listens on all interfaces (`--public`; `Plan.layout.bind`)."""
    return plan.placed().bind == "all-interfaces"


def uses_host_network(plan: Plan, simulate: bool) -> bool:
    """Engines of multi-node or disaggregated plans share the host's network: NCCL, the DP
    RPC, KV transfer side channels and bootstrap servers open ports peers must reach directly,
    and RDMA needs the host's devices. A rehearsal runs every engine on a bridge network."""
    if simulate:
        return False
    return is_multi_node(plan) or is_disaggregated(plan)


def reached_from_other_node(plan: Plan, node: str) -> bool:
    return (has_front(plan) and node != front_node(plan)) or cross_node_disaggregation(plan)


def bind_address(plan: Plan, node: str, simulate: bool) -> str:
    """`--host` of an engine's HTTP server. Inside a bridge container 0.0.0.0 is required (the
    port publication decides exposure). With host networking: all interfaces only for an
    endpoint users reach directly with --public; the node's cluster address when a front or a
    peer on another node must reach it; loopback otherwise."""
    if not uses_host_network(plan, simulate):
        return "0.0.0.0"
    if public_endpoint(plan) and not has_front(plan):
        return "0.0.0.0"
    if reached_from_other_node(plan, node):
        return node_summary(plan, node).address
    return "127.0.0.1"


def publish_ip(plan: Plan, node: str, *, is_front: bool) -> str:
    """Host address a bridge-networked port is published on."""
    if public_endpoint(plan) and (is_front or not has_front(plan)):
        return "0.0.0.0"
    if not is_front and reached_from_other_node(plan, node):
        return node_summary(plan, node).address
    return "127.0.0.1"


def needs_rdma(plan: Plan, replica: Replica | None, simulate: bool) -> bool:
    """RDMA devices and locked memory for services whose traffic crosses nodes on IB/RoCE."""
    if simulate or plan.hardware.fabric not in ("infiniband", "roce"):
        return False
    if replica is not None and len(replica.slices) > 1:
        return True
    return cross_node_disaggregation(plan)


# --------------------------------------------------------------------------------------------
# Model, volumes, environment


def model_argument(plan: Plan) -> tuple[str, list[Mount]]:
    """What the engine loads, and the mounts that make it visible."""
    mounts = [Mount(source=HF_CACHE_SOURCE, target=HF_CACHE_TARGET)]
    local = plan.model.local_path
    if local is None:
        return plan.model.id, mounts
    name = PurePosixPath(local.rstrip("/")).name or "model"
    target = f"{MODELS_TARGET}/{name}"
    mounts.append(Mount(source=local, target=target, read_only=True))
    return target, mounts


# Rendered files pin the Hub revision the plan read, so a re-render serves the same weights.
REVISION_WHY = "the Hub revision the plan was sized for"


def served_model_name(plan: Plan) -> str:
    return plan.model.name


def secret_env(plan: Plan) -> list[str]:
    names = {"HF_TOKEN"}
    if plan.request.api_key_env:
        names.add(plan.request.api_key_env)
    return sorted(names)


def expand_host_path(source: str, env: Mapping[str, str] | None = None) -> str:
    """Resolve a mount source the way compose does: `${VAR:-default}` then `~`."""
    environ = os.environ if env is None else env
    match = _HOST_REF.match(source)
    if match:
        value = environ.get(match.group(1)) or match.group(2)
        source = value + match.group(3)
    return os.path.expanduser(source)


def multi_node_environment(plan: Plan, node: NodeSummary, engine: str) -> dict[str, str]:
    from orchestrator.engines.network_env import socket_environment

    env = socket_environment(node)
    env["VLLM_HOST_IP" if engine == "vllm" else "SGLANG_HOST_IP"] = node.address
    return env


def simulation_environment(plan: Plan, role: Role, gpus_here: int) -> dict[str, str]:
    weights = weights_gib_on_node(role, gpus_here)
    env = {"DEPLOY_SIM_WEIGHTS_GIB": f"{weights:.1f}"}
    if role.memory is not None:
        env["DEPLOY_SIM_KV_TOKENS"] = str(role.memory.kv_cache_tokens)
    if plan.prediction is not None:
        # A rehearsal has the plan's shape: the simulator answers at the predicted medians.
        env["DEPLOY_SIM_TTFT_MS"] = f"{plan.prediction.ttft_ms:.1f}"
        env["DEPLOY_SIM_TPOT_MS"] = f"{plan.prediction.tpot_ms:.2f}"
    return env


def weights_gib_on_node(role: Role, gpus_here: int) -> float:
    if role.memory is None:
        return 0.0
    return role.memory.weights_gib_per_gpu * gpus_here


def start_period_s(
    plan: Plan, role: Role, gpus_here: int, nodes: int, download_s: float = 0.0
) -> int:
    """Seconds before failed probes count: see the constants above for the formula, plus the
    checkpoint's download on a first start (`cold_start.download_s`)."""
    seconds = download_s + weights_gib_on_node(role, gpus_here) / LOAD_RATE_GIB_PER_S
    seconds += ENGINE_START_S + CUDA_GRAPHS_S
    if plan.engine.name == "sglang":
        seconds += SGLANG_WARMUP_S
    if nodes > 1:
        seconds += MULTI_NODE_RENDEZVOUS_S
    return int(math.ceil(seconds / 60.0) * 60)


def http_probe(path: str, port: int, start_period: int, host: str = "127.0.0.1") -> Probe:
    return Probe(kind="http", path=path, port=port, start_period_s=start_period, host=host)


def probe_host(bind: str) -> str:
    """Where a health check inside the container reaches a server bound to `bind`."""
    return "127.0.0.1" if bind in ("0.0.0.0", "::") else bind


def process_probe(start_period: int) -> Probe:
    return Probe(kind="process", start_period_s=start_period)


def healthcheck_test(probe: Probe) -> list[str]:
    """The container healthcheck for a probe. Python answers in the engine images and the
    simulator image; busybox `wget` in the nginx image; curl where an image has only curl."""
    if probe.kind == "process":
        return ["CMD-SHELL", "kill -0 1"]
    if probe.kind == "peer" and probe.host and probe.port:
        # A rank > 0 is healthy while rank 0's rendezvous endpoint answers: its group lives.
        return ["CMD-SHELL", peer_check_command(probe.host, probe.port)]
    url = f"http://{probe.host}:{probe.port}{probe.path}"
    timeout = max(1, probe.timeout_s - 1)
    python = (
        f'python3 -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout={timeout})" '
        f"{url} 2>/dev/null"
    )
    return [
        "CMD-SHELL",
        f"{python} || curl -fsS -o /dev/null {url} || wget -q -O /dev/null {url}",
    ]


# --------------------------------------------------------------------------------------------
# Assembling a spec


def finish(spec: ServiceSpec, plan: Plan) -> ServiceSpec:
    """Add the labels `down`, `status` and the supervisor find services by."""
    labels = {
        LABEL_DEPLOYMENT: plan.name,
        LABEL_ROLE: spec.role,
        LABEL_NODE: spec.node,
        LABEL_RANK: str(spec.rank),
        LABEL_REPLICA: str(spec.replica),
        LABEL_SERVICE: spec.name,
        LABEL_PLAN_HASH: plan.plan_hash(),
    }
    labels[LABEL_SPEC_HASH] = spec.spec_hash()
    return spec.model_copy(update={"labels": dict(sorted(labels.items()))})


def engine_service_name(role: Role, replica: Replica, rank: int) -> str:
    if len(replica.slices) > 1:
        return f"{role.name}-{replica.index}-rank{rank}"
    return f"{role.name}-{replica.index}"


def port_bindings(
    plan: Plan, node: str, port: int, *, host_network: bool, is_front: bool
) -> list[PortBinding]:
    if host_network:
        return []
    return [
        PortBinding(container=port, host=port, host_ip=publish_ip(plan, node, is_front=is_front))
    ]


def sorted_env(env: dict[str, str]) -> dict[str, str]:
    return dict(sorted(env.items()))


@dataclass(frozen=True)
class Placement:
    """One container of an engine instance: which rank of which replica, on which GPUs."""

    plan: Plan
    role: Role
    replica: Replica
    rank: int
    simulate: bool

    @property
    def node(self) -> NodeSummary:
        return node_summary(self.plan, self.replica.slices[self.rank].node)

    @property
    def head(self) -> NodeSummary:
        return node_summary(self.plan, self.replica.slices[0].node)

    @property
    def gpus(self) -> list[int]:
        return list(self.replica.slices[self.rank].gpus)

    @property
    def nnodes(self) -> int:
        return len(self.replica.slices)

    @property
    def port(self) -> int:
        return engine_port(self.plan, self.role, self.replica)

    @property
    def host_network(self) -> bool:
        return uses_host_network(self.plan, self.simulate)

    @property
    def bind(self) -> str:
        return bind_address(self.plan, self.node.name, self.simulate)

    @property
    def name(self) -> str:
        return engine_service_name(self.role, self.replica, self.rank)

    def rendezvous_port(self, base: int, stride: int = 1) -> int:
        """A per-instance port: role blocks of 100, one `stride` per replica."""
        return base + 100 * ROLE_SLOT[self.role.name] + stride * self.replica.index


def placements(plan: Plan, simulate: bool) -> list[Placement]:
    return [
        Placement(plan, role, replica, rank, simulate)
        for role in engine_roles(plan)
        for replica in role.replicas
        for rank in range(len(replica.slices))
    ]


def engine_spec(
    place: Placement,
    *,
    entrypoint: list[str],
    argv: Argv,
    environment: dict[str, str],
    probe_path: str,
    mounts: list[Mount],
    name: str | None = None,
    serves_http: bool | None = None,
    depends_on: list[str] | None = None,
) -> ServiceSpec:
    """Everything around an engine's command line. `name`, `serves_http` and `depends_on`
    override what the placement implies (a Ray cluster adds services around the engine)."""
    plan = place.plan
    env = dict(environment)
    if place.nnodes > 1 or cross_node_disaggregation(plan):
        env.update(multi_node_environment(plan, place.node, plan.engine.name))
    if place.simulate:
        env.update(simulation_environment(plan, place.role, len(place.gpus)))
    start = start_period_s(
        plan, place.role, len(place.gpus), place.nnodes, download_s(plan, place.simulate)
    )
    if serves_http is None:
        serves_http = place.rank == 0
    probe = (
        http_probe(probe_path, place.port, start, probe_host(place.bind))
        if serves_http
        else process_probe(start)
    )
    group = f"{place.role.name}-{place.replica.index}" if place.nnodes > 1 else None
    # The rank reaches rank 0's address only from the node's own network: a rehearsal's
    # bridge-networked rank would look for it inside its own container.
    reachable = place.host_network or not place.simulate
    peer = group_peer(argv.args) if place.rank > 0 and not serves_http and reachable else None
    if peer is not None:
        probe = Probe(kind="peer", host=peer[0], port=peer[1], start_period_s=start)
    ports = (
        port_bindings(
            plan, place.node.name, place.port, host_network=place.host_network, is_front=False
        )
        if serves_http
        else []
    )
    rdma = needs_rdma(plan, place.replica, place.simulate)
    env.update(rdma_environment(place.node, rdma=rdma))
    if not place.simulate:
        mounts = [*mounts, *jit_cache_mounts(plan.engine.name)]
    spec = ServiceSpec(
        name=name or place.name,
        node=place.node.name,
        role=place.role.name,
        replica=place.replica.index,
        rank=place.rank,
        image=SIM_IMAGE if place.simulate else plan.engine.image,
        entrypoint=entrypoint,
        command=argv.args,
        environment=sorted_env(env),
        secret_env=secret_env(plan),
        ports=ports,
        gpus=None if place.simulate else place.gpus,
        mounts=mounts,
        network_mode="host" if place.host_network else "bridge",
        probe=probe,
        depends_on=list(depends_on or []),
        group=group,
        restart=restart_policy(group),
        flags=argv.sources,
        devices=list(RDMA_DEVICES) if rdma else [],
        ulimits=dict(RDMA_ULIMITS) if rdma else {},
        cap_add=["IPC_LOCK"] if rdma else [],
        privileged=rdma and runs_deepep(plan.engine.name, argv.args),
    )
    return finish(spec, plan)


def hybrid_lb(place: Placement) -> bool:
    """A data-parallel prefill or decode pool spanning nodes runs vLLM's hybrid load balancing:
    one API endpoint per node, each balancing over its own DP ranks, and the PD router spreads
    requests over the nodes (vLLM's data_parallel_deployment.md, "Hybrid LB"; the DEP recipes
    in vllm-project/recipes add --data-parallel-hybrid-lb). Without it, rank 0's node runs
    the API servers of every rank of the pool."""
    return is_disaggregated(place.plan) and place.nnodes > 1 and place.role.parallelism.dp > 1
