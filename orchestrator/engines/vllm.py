"""vLLM: `vllm serve` command lines for every rank of every instance of a plan.

Layouts (vLLM docs: parallelism_scaling.md, data_parallel_deployment.md,
expert_parallel_deployment.md, nixl_connector_usage.md):
- one node: `vllm serve MODEL --tensor-parallel-size N [--data-parallel-size D]
  [--enable-expert-parallel]`;
- TP/PP across nodes (no DP): native multiprocessing, `--nnodes/--node-rank/--master-addr/
  --master-port`, `--headless` on ranks > 0;
- DP across nodes: `--data-parallel-size/-size-local/-address/-rpc-port`, and
  `--data-parallel-start-rank` with `--headless` on secondary nodes (one API server, on rank 0);
- TP/PP across nodes on Ray (`--distributed-backend ray`, parallelism_scaling.md): a
  `ray start --block` head and workers in the engine image, then one `vllm serve
  --distributed-executor-backend ray` on the head node that joins the cluster;
- prefill/decode: `--kv-transfer-config` with NixlConnector, producer on prefill and consumer
  on decode, plus `VLLM_NIXL_SIDE_CHANNEL_HOST/PORT` and `UCX_NET_DEVICES`; or MooncakeConnector
  (`--kv-connector mooncake`) with `VLLM_MOONCAKE_BOOTSTRAP_PORT` on the prefill side.
"""

from __future__ import annotations

import json

from orchestrator.engines.common import (
    RAY_ENTRYPOINT,
    REVISION_WHY,
    Argv,
    Placement,
    apply_user_args,
    engine_spec,
    hybrid_lb,
    is_disaggregated,
    model_argument,
    placements,
    served_model_name,
)
from orchestrator.engines.memory_flags import MemorySpelling, add_memory_flags
from orchestrator.engines.recipes import apply_recipes
from orchestrator.engines.vllm_cpu import cpu_argv, cpu_spec
from orchestrator.errors import PlanError
from orchestrator.plan import Plan
from orchestrator.spec import FlagOrigin, Mount, ServiceSpec, secret_ref

ENTRYPOINT = ["vllm", "serve"]
HEALTH_PATH = "/health"
MASTER_PORT = 29501  # vLLM's default --master-port
DP_RPC_PORT = 29550  # vLLM's default --data-parallel-rpc-port
NIXL_SIDE_CHANNEL_PORT = 5600  # VLLM_NIXL_SIDE_CHANNEL_PORT default; each DP rank adds 1
MOONCAKE_BOOTSTRAP_PORT = 8998  # VLLM_MOONCAKE_BOOTSTRAP_PORT default (prefill side)
RAY_PORT = 6379  # the Ray head's GCS port in vLLM's run_cluster.sh

MEMORY_SPELLING = MemorySpelling(
    context_flag="--max-model-len",
    fraction_flag="--gpu-memory-utilization",
    fraction_why="fraction of GPU memory for weights, activations and KV cache",
    fp8_kv_value="fp8",
    quantization={
        "fp8": "fp8",
        "mxfp4": "mxfp4",
        "awq": "awq",
        "gptq": "gptq",
        "int8": "experts_int8",
    },
)

# Flags deploy derives from the layout; a user may not pass them with --engine-arg.
MANAGED = frozenset(
    {
        "--host",
        "--port",
        "--served-model-name",
        "--tensor-parallel-size",
        "-tp",
        "--pipeline-parallel-size",
        "-pp",
        "--data-parallel-size",
        "-dp",
        "--data-parallel-size-local",
        "--data-parallel-address",
        "--data-parallel-rpc-port",
        "--data-parallel-start-rank",
        "--nnodes",
        "--node-rank",
        "--master-addr",
        "--master-port",
        "--headless",
        "--data-parallel-hybrid-lb",
        "--kv-transfer-config",
        "--distributed-executor-backend",
        "--api-key",
    }
)


def build(plan: Plan, simulate: bool) -> list[ServiceSpec]:
    model, mounts = model_argument(plan)
    services: list[ServiceSpec] = []
    for place in placements(plan, simulate):
        if uses_ray(place):
            services.extend(_ray_instance(place, model, mounts))
        else:
            services.append(_service(place, model, mounts))
    return services


def uses_ray(place: Placement) -> bool:
    """Ray only matters where an instance spans nodes; one node keeps multiprocessing."""
    return place.plan.request.distributed_backend == "ray" and place.nnodes > 1


def _ray_instance(place: Placement, model: str, mounts: list[Mount]) -> list[ServiceSpec]:
    """One Ray node per slice of the instance, and on the head node the `vllm serve` that
    drives the cluster. The Ray nodes hold the GPUs the engine's workers run on."""
    if place.simulate:
        raise PlanError(
            "the simulator image has no Ray, so --distributed-backend ray cannot be rehearsed",
            "rehearse with --distributed-backend mp (the default)",
        )
    if place.role.parallelism.dp > 1:
        raise PlanError(
            f"--distributed-backend ray spans nodes with TP/PP only, not DP{place.role.parallelism.dp}",
            "use --distributed-backend mp for data parallelism across nodes",
        )
    ray_node = _ray_node(place, mounts)
    if place.rank > 0:
        return [ray_node]
    # The engine shares the head node's GPUs with its Ray node: the driver needs CUDA visible
    # to pick its platform, while the workers Ray places hold the memory.
    name = f"{place.role.name}-{place.replica.index}"
    return [ray_node, _service(place, model, mounts, ray=True, name=name, depends=[ray_node.name])]


def ray_port(place: Placement) -> int:
    return place.rendezvous_port(RAY_PORT)


def _ray_node(place: Placement, mounts: list[Mount]) -> ServiceSpec:
    """`ray start --block` in the engine image, as vLLM's run_cluster.sh does. This is Ray's
    command line, not an engine's: `orchestrator.engines.flags.check_argv` checks only `vllm serve`."""
    argv = Argv()
    argv.positional("start", "deploy", "join or found this instance's Ray cluster", "start")
    argv.flag("--block", origin="deploy", why="stay in the foreground as the container's process")
    port = ray_port(place)
    if place.rank == 0:
        argv.flag("--head", origin="deploy", why="this node holds the cluster's GCS")
        argv.flag(f"--port={port}", origin="deploy", why="GCS port of this instance's cluster")
    else:
        argv.flag(
            f"--address={place.head.address}:{port}",
            origin="deploy",
            why="the head node's GCS",
        )
    argv.flag(
        f"--node-ip-address={place.node.address}",
        origin="deploy",
        why="the address peers reach this node on",
    )
    return engine_spec(
        place,
        entrypoint=list(RAY_ENTRYPOINT),
        argv=argv,
        environment={},
        probe_path=HEALTH_PATH,
        mounts=mounts,
        name=f"{place.role.name}-{place.replica.index}-ray{place.rank}",
        serves_http=False,
    )


def _service(
    place: Placement,
    model: str,
    mounts: list[Mount],
    *,
    ray: bool = False,
    name: str | None = None,
    depends: list[str] | None = None,
) -> ServiceSpec:
    plan = place.plan
    argv = Argv()
    argv.positional(model, "model", "the model to serve", "MODEL")
    if plan.model.revision and plan.model.local_path is None:
        argv.flag("--revision", plan.model.revision, origin="model", why=REVISION_WHY)
    headless = place.rank > 0 and not hybrid_lb(place)
    if not headless:
        argv.flag(
            "--served-model-name",
            served_model_name(plan),
            origin="model",
            why="clients ask for the catalog name",
        )
        argv.flag("--host", place.bind, origin="deploy", why="listen address (see README)")
        argv.flag("--port", place.port, origin="deploy", why="this instance's HTTP port")
    if ray:
        _ray_parallel_flags(place, argv)
    else:
        _parallel_flags(place, argv)
    add_memory_flags(place, argv, MEMORY_SPELLING)
    if plan.cpu is not None:
        argv = cpu_argv(argv)
    # Per-request logging is off by default in every pinned version (`--enable-log-requests`
    # turns it on), so no `--disable-log-requests` is rendered.
    env: dict[str, str] = {}
    if is_disaggregated(plan):
        env.update(_pd_flags(place, argv))
    if plan.cpu is None:  # published recipes are GPU settings
        env.update(apply_recipes(place, argv))
    if plan.request.api_key_env and plan.request.api_key_env != "VLLM_API_KEY":
        # vLLM reads its key from VLLM_API_KEY; the value is a reference, never the secret.
        env["VLLM_API_KEY"] = secret_ref(plan.request.api_key_env)
    if ray:
        # vLLM's ray.init() reads the cluster address from RAY_ADDRESS.
        env["RAY_ADDRESS"] = f"{place.head.address}:{ray_port(place)}"
    argv = apply_user_args(argv, plan.request.engine_args, MANAGED)
    spec = engine_spec(
        place,
        entrypoint=list(ENTRYPOINT),
        argv=argv,
        environment=env,
        probe_path=HEALTH_PATH,
        mounts=mounts,
        name=name,
        depends_on=depends,
        serves_http=not headless,
    )
    # CPU nodes: vLLM's CPU build (engines/vllm_cpu.py).
    return spec if plan.cpu is None else cpu_spec(place, spec)


def _ray_parallel_flags(place: Placement, argv: Argv) -> None:
    par = place.role.parallelism
    argv.flag("--tensor-parallel-size", par.tp, origin="resolver", why=par.label())
    argv.flag("--pipeline-parallel-size", par.pp, origin="resolver", why="layers split over GPUs")
    argv.flag(
        "--distributed-executor-backend",
        "ray",
        origin="user",
        why="--distributed-backend ray: workers run on the Ray cluster's nodes",
    )
    if par.ep > 1:
        argv.flag(
            "--enable-expert-parallel",
            origin="resolver",
            why=f"experts sharded over TP×DP = {par.tp * par.dp} GPUs",
        )


def _parallel_flags(place: Placement, argv: Argv) -> None:
    par = place.role.parallelism
    argv.flag("--tensor-parallel-size", par.tp, origin="resolver", why=par.label())
    if par.pp > 1:
        argv.flag(
            "--pipeline-parallel-size", par.pp, origin="resolver", why="layers split over GPUs"
        )
    if place.nnodes > 1 and par.dp > 1:
        _multi_node_dp(place, argv)
    elif place.nnodes > 1:
        argv.flag("--nnodes", place.nnodes, origin="deploy", why="instance spans nodes")
        argv.flag("--node-rank", place.rank, origin="deploy", why="this node's rank")
        argv.flag("--master-addr", place.head.address, origin="deploy", why="rank 0's node")
        argv.flag(
            "--master-port",
            place.rendezvous_port(MASTER_PORT),
            origin=_default_or_deploy(place.rendezvous_port(MASTER_PORT), MASTER_PORT),
            why="rendezvous port of this instance",
        )
        if place.rank > 0:
            argv.flag("--headless", origin="deploy", why="workers only; rank 0 serves HTTP")
    elif par.dp > 1:
        argv.flag("--data-parallel-size", par.dp, origin="resolver", why="engine-level DP ranks")
    if par.ep > 1:
        argv.flag(
            "--enable-expert-parallel",
            origin="resolver",
            why=f"experts sharded over TP×DP = {par.tp * par.dp} GPUs",
        )
        backend = _all2all_backend(place)
        if backend:
            argv.flag(
                "--all2all-backend",
                backend,
                origin="deploy",
                why="DeepEP kernels for expert parallelism across nodes",
            )


def _default_or_deploy(value: int, default: int) -> FlagOrigin:
    """Ports equal to the engine's default are shown as such; other instances move off it."""
    return "engine-default" if value == default else "deploy"


def _multi_node_dp(place: Placement, argv: Argv) -> None:
    par = place.role.parallelism
    per_rank = par.tp * par.pp
    locals_ = [len(piece.gpus) // per_rank for piece in place.replica.slices]
    if any(len(piece.gpus) % per_rank for piece in place.replica.slices) or sum(locals_) != par.dp:
        raise PlanError(
            f"vLLM cannot place DP{par.dp}×TP{par.tp * par.pp} on slices of "
            f"{[len(piece.gpus) for piece in place.replica.slices]} GPUs",
            "pin --tp to divide the GPUs of each node",
        )
    argv.flag("--data-parallel-size", par.dp, origin="resolver", why="engine-level DP ranks")
    argv.flag(
        "--data-parallel-size-local",
        locals_[place.rank],
        origin="deploy",
        why="DP ranks on this node",
    )
    argv.flag("--data-parallel-address", place.head.address, origin="deploy", why="DP head node")
    argv.flag(
        "--data-parallel-rpc-port",
        place.rendezvous_port(DP_RPC_PORT),
        origin=_default_or_deploy(place.rendezvous_port(DP_RPC_PORT), DP_RPC_PORT),
        why="DP coordination port of this instance",
    )
    if hybrid_lb(place):
        argv.flag(
            "--data-parallel-hybrid-lb",
            origin="deploy",
            why="an API endpoint on every node of the pool; the router balances over the nodes",
        )
        argv.flag(
            "--data-parallel-start-rank",
            sum(locals_[: place.rank]),
            origin="deploy",
            why="first DP rank on this node",
        )
    elif place.rank > 0:
        argv.flag(
            "--data-parallel-start-rank",
            sum(locals_[: place.rank]),
            origin="deploy",
            why="first DP rank on this node",
        )
        argv.flag("--headless", origin="deploy", why="one API server, on the head node")


def _all2all_backend(place: Placement) -> str | None:
    """vLLM's wide-EP example uses DeepEP low-latency kernels for decode; prefill-heavy
        instances use the high-throughput ones. When the experts stay inside one node (EP within
    NVLink), the default is kept."""
    if place.role.parallelism.ep <= len(place.gpus):
        return None
    return "deepep_high_throughput" if place.role.name == "prefill" else "deepep_low_latency"


def nixl_side_channel_port(place: Placement) -> int:
    """Each DP rank of an instance listens on base + its DP rank, so instances get disjoint
    ranges: prefill instances first, then decode, each as wide as its DP size."""
    offset = 0
    for role in (place.plan.role("prefill"), place.plan.role("decode")):
        if role is None:
            continue
        for replica in role.replicas:
            if role.name == place.role.name and replica.index == place.replica.index:
                return NIXL_SIDE_CHANNEL_PORT + offset
            offset += role.parallelism.dp
    raise AssertionError("a PD placement belongs to the prefill or decode role")


def mooncake_bootstrap_port(place: Placement) -> int:
    """Prefill instances on one node each need their own bootstrap server port."""
    return MOONCAKE_BOOTSTRAP_PORT + place.replica.index


def _pd_flags(place: Placement, argv: Argv) -> dict[str, str]:
    role_name = place.role.name
    if place.plan.request.kv_connector == "mooncake":
        return _mooncake_flags(place, argv)
    config = {
        "kv_connector": "NixlConnector",
        "kv_role": "kv_producer" if role_name == "prefill" else "kv_consumer",
        "kv_load_failure_policy": "fail",
    }
    argv.flag(
        "--kv-transfer-config",
        json.dumps(config, separators=(",", ":")),
        origin="deploy",
        why=f"NIXL KV transfer, {role_name} side; a failed KV load is an error, not a "
        "silent recompute",
    )
    node = place.node
    env = {
        "VLLM_NIXL_SIDE_CHANNEL_HOST": node.address,
        "VLLM_NIXL_SIDE_CHANNEL_PORT": str(nixl_side_channel_port(place)),
        "UCX_NET_DEVICES": ",".join(f"{dev}:1" for dev in node.rdma_devices)
        if node.rdma_devices and not place.simulate
        else "all",
    }
    return env


def _mooncake_flags(place: Placement, argv: Argv) -> dict[str, str]:
    role_name = place.role.name
    config = {
        "kv_connector": "MooncakeConnector",
        "kv_role": "kv_producer" if role_name == "prefill" else "kv_consumer",
    }
    argv.flag(
        "--kv-transfer-config",
        json.dumps(config, separators=(",", ":")),
        origin="user",
        why=f"--kv-connector mooncake, {role_name} side",
    )
    if role_name != "prefill":
        return {}
    return {"VLLM_MOONCAKE_BOOTSTRAP_PORT": str(mooncake_bootstrap_port(place))}
