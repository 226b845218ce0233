"""SGLang: `python3 -m sglang.launch_server` command lines for every rank of a plan.

`python3 -m sglang.launch_server --model-path M` is used for every pinned version: it takes
the model as a flag (the `sglang serve` front-end rewrites a positional one), it exists in all
of them, and the flag schemas describe exactly its parser (`ServerArgs`). Full flag names
always: `--tp`/`--dp` work only through argparse prefix matching, and `--pp` is ambiguous.

Layouts (SGLang docs: multi_node.mdx, expert_parallelism.mdx, pd_disaggregation.mdx):
- TP across nodes: `--tp-size <total> --nnodes N --node-rank r --dist-init-addr head:port`
  (ranks > 0 serve no HTTP);
- attention DP: `--attn-dp-size N` from 0.5.22; `--dp-size N --enable-dp-attention` before;
- EP: `--ep-size N`, `--moe-a2a-backend deepep` when experts span nodes (it forces EP = TP);
- PD: `--disaggregation-mode prefill|decode`, transfer backend, IB devices, bootstrap port.
"""

from __future__ import annotations

from orchestrator.engines.common import (
    REVISION_WHY,
    Argv,
    Placement,
    apply_user_args,
    engine_spec,
    is_disaggregated,
    model_argument,
    placements,
    served_model_name,
)
from orchestrator.engines.memory_flags import MemorySpelling, add_memory_flags
from orchestrator.engines.recipes import apply_recipes
from orchestrator.engines.versions import feature
from orchestrator.errors import PlanError
from orchestrator.plan import Plan
from orchestrator.spec import Mount, ServiceSpec, secret_ref

ENTRYPOINT = ["python3", "-m", "sglang.launch_server"]
# SGLang takes its API key only as `--api-key KEY` (no environment variable, no file), and a
# command line is readable by every local user (`ps`, /proc/PID/cmdline) and by
# `docker inspect`. So the key travels in SGLANG_API_KEY (a reference to the user's variable,
# resolved when the container is created, like vLLM's VLLM_API_KEY) or in a file named by
# SGLANG_API_KEY_FILE, and this wrapper hands it to SGLang's parser in-process: it becomes the
# server through `runpy` (same process, same pid, signals reach the server), with the key in
# `sys.argv` only, which /proc never shows. It drops the variable so SGLang's worker processes
# do not inherit it, and refuses to serve unprotected when the key is empty. One line, no `$`
# (compose would interpolate it), no shell.
KEY_ENV = "SGLANG_API_KEY"
KEY_FILE_ENV = "SGLANG_API_KEY_FILE"
KEY_WRAPPER = (
    "import os,runpy,sys;"
    f'f=os.environ.pop("{KEY_FILE_ENV}","");'
    f'k=(open(f).read() if f else os.environ.pop("{KEY_ENV}","")).strip();'
    f'k or sys.exit("deploy: {KEY_ENV} (or the file {KEY_FILE_ENV} names) is empty; '
    'refusing to serve without the API key");'
    'sys.argv=[*sys.argv[1:],"--api-key",k];'
    'runpy.run_module(sys.argv[0],run_name="__main__",alter_sys=True)'
)
KEY_ENTRYPOINT = ["python3", "-c", KEY_WRAPPER, "sglang.launch_server"]
# /ready is 200 once warmup is done and the server is not paused, without running a
# generation the way /health does by default (a busy server could miss its deadline).
READY_PATH = "/ready"
DIST_INIT_PORT = 20000  # SGLang docs use 20000; attention DP also takes the next six ports
DIST_INIT_STRIDE = 10
BOOTSTRAP_PORT = 8998  # --disaggregation-bootstrap-port default

MEMORY_SPELLING = MemorySpelling(
    context_flag="--context-length",
    fraction_flag="--mem-fraction-static",
    fraction_why="fraction of GPU memory for weights and KV cache",
    fp8_kv_value="fp8_e4m3",
    quantization={
        "fp8": "fp8",
        "mxfp4": "mxfp4",
        "awq": "awq",
        "gptq": "gptq",
        "int8": "w8a8_int8",
    },
)

MANAGED = frozenset(
    {
        "--host",
        "--port",
        "--model-path",
        "--served-model-name",
        "--tp-size",
        "--tensor-parallel-size",
        "--pp-size",
        "--pipeline-parallel-size",
        "--dp-size",
        "--data-parallel-size",
        "--attn-dp-size",
        "--attention-data-parallel-size",
        "--enable-dp-attention",
        "--nnodes",
        "--node-rank",
        "--dist-init-addr",
        "--nccl-init-addr",
        "--disaggregation-mode",
        "--disaggregation-bootstrap-port",
        "--api-key",
    }
)


def build(plan: Plan, simulate: bool) -> list[ServiceSpec]:
    model, mounts = model_argument(plan)
    return [_service(place, model, mounts) for place in placements(plan, simulate)]


def uses_attn_dp_flag(version: str) -> bool:
    """`--attn-dp-size` exists (the release profile's `attn_dp_size_flag` gate)."""
    return feature("sglang", version, "attn_dp_size_flag")


def bootstrap_port(place_index: int) -> int:
    return BOOTSTRAP_PORT + place_index


def _service(place: Placement, model: str, mounts: list[Mount]) -> ServiceSpec:
    plan = place.plan
    argv = Argv()
    argv.flag("--model-path", model, origin="model", why="the model to serve")
    if plan.model.revision and plan.model.local_path is None:
        argv.flag("--revision", plan.model.revision, origin="model", why=REVISION_WHY)
    if place.rank == 0:
        argv.flag(
            "--served-model-name",
            served_model_name(plan),
            origin="model",
            why="clients ask for the catalog name",
        )
        argv.flag("--host", place.bind, origin="deploy", why="listen address (see README)")
        argv.flag("--port", place.port, origin="deploy", why="this instance's HTTP port")
    _parallel_flags(place, argv)
    add_memory_flags(place, argv, MEMORY_SPELLING)
    argv.flag("--enable-metrics", origin="deploy", why="Prometheus /metrics is off by default")
    if is_disaggregated(plan):
        _pd_flags(place, argv)
    environment = apply_recipes(place, argv)
    entrypoint = ENTRYPOINT
    if plan.request.api_key_env and place.rank == 0:
        # A reference to the host variable: compose interpolates it, the supervisor resolves it
        # when it creates the container; no rendered file and no command line holds the key.
        environment[KEY_ENV] = secret_ref(plan.request.api_key_env)
        entrypoint = KEY_ENTRYPOINT
    argv = apply_user_args(argv, plan.request.engine_args, MANAGED)
    return engine_spec(
        place,
        entrypoint=list(entrypoint),
        argv=argv,
        environment=environment,
        probe_path=READY_PATH,
        mounts=mounts,
    )


def _parallel_flags(place: Placement, argv: Argv) -> None:
    par = place.role.parallelism
    version = place.plan.engine.version
    argv.flag("--tp-size", par.tp, origin="resolver", why=par.label())
    if par.pp > 1:
        argv.flag("--pp-size", par.pp, origin="resolver", why="layers split over GPUs")
    if par.dp > 1 and place.nnodes > 1:
        raise PlanError(
            f"SGLang cannot run data-parallel replicas (DP{par.dp}) across nodes",
            "use attention DP (--attn-dp) or one replica per node",
        )
    if par.dp > 1 and par.attn_dp > 1:
        raise PlanError(
            f"SGLang accepts DP replicas or attention DP, not both (DP{par.dp}, ADP{par.attn_dp})",
            "pin --dp 1 or --attn-dp 1",
        )
    if par.dp > 1:
        argv.flag("--dp-size", par.dp, origin="resolver", why="data-parallel replicas")
    if par.attn_dp > 1:
        if uses_attn_dp_flag(version):
            argv.flag(
                "--attn-dp-size",
                par.attn_dp,
                origin="resolver",
                why="attention data-parallel groups inside TP",
            )
        else:
            argv.flag(
                "--dp-size",
                par.attn_dp,
                origin="resolver",
                why="attention DP (before 0.5.22: --dp-size with --enable-dp-attention)",
            )
            argv.flag("--enable-dp-attention", origin="resolver", why="attention DP")
    if par.ep > 1:
        argv.flag("--ep-size", par.ep, origin="resolver", why="experts sharded over GPUs")
        if par.sglang_deepep(len(place.gpus)):
            argv.flag(
                "--moe-a2a-backend",
                "deepep",
                origin="deploy",
                why="DeepEP all-to-all for experts across nodes",
            )
    if place.nnodes > 1:
        port = place.rendezvous_port(DIST_INIT_PORT, DIST_INIT_STRIDE)
        argv.flag("--nnodes", place.nnodes, origin="deploy", why="instance spans nodes")
        argv.flag("--node-rank", place.rank, origin="deploy", why="this node's rank")
        argv.flag(
            "--dist-init-addr",
            f"{place.head.address}:{port}",
            origin="deploy",
            why="rank 0's node and this instance's rendezvous port",
        )


def transfer_backend(place: Placement) -> str:
    """The user's --kv-connector; otherwise Mooncake over RDMA where the node has RDMA devices,
    NIXL (UCX, which also runs over TCP and CUDA IPC) where it has none, and in a rehearsal."""
    if place.plan.request.kv_connector is not None:
        return place.plan.request.kv_connector
    if place.node.rdma_devices and not place.simulate:
        return "mooncake"
    return "nixl"


def _pd_flags(place: Placement, argv: Argv) -> None:
    role = place.role.name
    argv.flag("--disaggregation-mode", role, origin="deploy", why="prefill/decode role")
    backend = transfer_backend(place)
    argv.flag(
        "--disaggregation-transfer-backend",
        backend,
        origin="user" if place.plan.request.kv_connector else "deploy",
        why="KV transfer between prefill and decode",
    )
    if backend == "mooncake" and place.node.rdma_devices and not place.simulate:
        argv.flag(
            "--disaggregation-ib-device",
            ",".join(place.node.rdma_devices),
            origin="deploy",
            why="this node's RDMA devices",
        )
    if role == "prefill":
        argv.flag(
            "--disaggregation-bootstrap-port",
            bootstrap_port(place.replica.index),
            origin="engine-default" if place.replica.index == 0 else "deploy",
            why="KV bootstrap server of this prefill instance (the router passes it on)",
        )
