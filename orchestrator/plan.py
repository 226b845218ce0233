"""The `Plan`: what the resolver decided, serialisable, and the `deploy plan --json` contract.

Everything downstream (renderers, the supervisor, `deploy render`) reads a `Plan` and nothing
else, so a `plan.json` written by `deploy render` can be rendered again byte for byte.
"""

# No `from __future__ import annotations` in this module: pydantic would then evaluate each
# field's annotation string when the class is created, a quarter of this import's cost on every
# `deploy` run.

import hashlib
import json
from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from orchestrator.base import Strict

SCHEMA_VERSION = 1

EngineName = Literal["vllm", "sglang"]
Goal = Literal["latency", "throughput", "balanced"]
RoleName = Literal["serve", "prefill", "decode", "router"]


class ModelSummary(Strict):
    id: str = Field(description="Hugging Face id, or the local directory")
    name: str = Field(description="catalog alias (or directory name for local models)")
    params_total: int
    params_active: int
    attention: Literal["mha", "gqa", "mla"]
    is_moe: bool
    max_context: int
    local_path: str | None = Field(default=None, description="set when served from a directory")
    checkpoint_format: str
    source: Literal["catalog", "hub", "local"] = Field(
        default="catalog", description="where deploy found the model"
    )
    revision: str | None = Field(
        default=None, description="Hub commit (or the --revision given); pinned when rendered"
    )
    # Facts renderers need, so they never look the model up again (added within schema 1;
    # None in plans written before them).
    checkpoint_bytes: int | None = Field(
        default=None, description="bytes of the checkpoint as stored (what a node downloads)"
    )
    routed_experts: int | None = Field(
        default=None, description="routed experts per MoE layer; None for a dense model"
    )

    @model_serializer(mode="wrap")
    def _omit_later_facts(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in ("checkpoint_bytes", "routed_experts"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class EngineSummary(Strict):
    name: EngineName
    version: str
    image: str


class NodeSummary(Strict):
    name: str
    address: str
    docker: str
    gpus: int
    network_interface: str | None = None
    rdma_devices: list[str] = []


class HardwareSummary(Strict):
    gpu: str = Field(description="catalog GPU name")
    gpu_memory_gib: float
    gpus_per_node: int
    nodes: int
    interconnect: str
    fabric: str
    node_list: list[NodeSummary]
    compute_capability: str | None = Field(
        default=None, description="the GPU's CUDA compute capability, e.g. 9.0 (recipes match it)"
    )
    gpu_products: list[str] = Field(
        default=[],
        description="the GPU's NVML product names, as node labels spell them (nvidia.com/gpu.product)",
    )

    @model_serializer(mode="wrap")
    def _omit_later_facts(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("compute_capability") is None:
            data.pop("compute_capability", None)
        if not data.get("gpu_products"):
            data.pop("gpu_products", None)
        return data


class Parallelism(Strict):
    """Sizes of one engine instance. DP counts engine-level data-parallel ranks
    (vLLM --data-parallel-size, SGLang --dp-size); attn_dp is SGLang's attention-DP and, for
    vLLM MoE, equals dp (DP attention with EP MoE)."""

    tp: int = Field(default=1, ge=1)
    pp: int = Field(default=1, ge=1)
    dp: int = Field(default=1, ge=1)
    ep: int = Field(default=1, ge=1, description="expert-parallel size; 1 means no EP")
    attn_dp: int = Field(default=1, ge=1)

    @property
    def gpus(self) -> int:
        """GPUs one instance occupies (attention-DP adds none)."""
        return self.tp * self.pp * self.dp

    def sglang_deepep(self, gpus_per_node: int) -> bool:
        """Whether SGLang runs these experts over DeepEP: EP = TP spans more GPUs than a node
        holds (the renderer passes `--moe-a2a-backend deepep`; the memory plan reserves its
        buffers)."""
        return self.ep > max(1, gpus_per_node) and self.ep == self.tp

    def label(self) -> str:
        parts = [f"TP{self.tp}"]
        if self.pp > 1:
            parts.append(f"PP{self.pp}")
        if self.dp > 1:
            parts.append(f"DP{self.dp}")
        if self.attn_dp > 1 and self.attn_dp != self.dp:
            parts.append(f"ADP{self.attn_dp}")
        if self.ep > 1:
            parts.append(f"EP{self.ep}")
        return "×".join(parts)


class MemoryEstimate(Strict):
    """Per-GPU memory of one engine instance (GiB = 2**30 bytes)."""

    weights_gib_per_gpu: float = Field(description='what vLLM logs as "Model loading took"')
    kv_bytes_per_token_per_gpu: int
    kv_cache_gib_per_gpu: float = Field(description='vLLM "Available KV cache memory"')
    kv_cache_tokens: int = Field(description="per engine instance (vLLM GPU KV cache size)")
    max_concurrency: float = Field(description="requests of `context` tokens held at once")
    overhead_gib_per_gpu: float = Field(description="activation peak, CUDA graphs, runtime")
    gpu_memory_gib: float
    memory_fraction: float = Field(description="gpu_memory_utilization or mem_fraction_static")
    context: int
    kv_gib_per_request: float
    fits: bool
    # Positive: spare KV room beyond one full-context request; negative: the shortfall.
    margin_gib_per_gpu: float


class Reason(Strict):
    decision: str = Field(description="what was decided, e.g. 'tensor parallel'")
    choice: str
    why: str


class Prediction(Strict):
    """The performance model's forecast at the request's lengths and load (docs/performance.md)."""

    ttft_ms: float = Field(description="median time to first token")
    tpot_ms: float = Field(description="median time per output token after the first")
    output_tokens_per_s: float = Field(description="the whole deployment")
    input_tokens_per_s: float
    output_tokens_per_s_per_gpu: float
    requests_per_s: float
    max_concurrency: int = Field(description="requests running at once (engine and KV caps)")
    bound: str = Field(description="what limits it: memory-bandwidth, compute, kv-capacity...")


class Adjustment(Strict):
    """An engine knob the planner set to make the layout fit or run better."""

    knob: str = Field(description="e.g. context, kv_cache_dtype, memory_fraction")
    value: str
    default: str
    reason: str


class Alternative(Strict):
    summary: str
    lost_because: str
    prediction: Prediction | None = None

    @model_serializer(mode="wrap")
    def _omit_missing_prediction(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("prediction") is None:
            data.pop("prediction", None)
        return data


class NodeSlice(Strict):
    node: str
    gpus: list[int]


class Replica(Strict):
    """One engine instance of a role; spans one or more nodes."""

    index: int = Field(ge=0)
    slices: list[NodeSlice]


class Role(Strict):
    name: RoleName
    parallelism: Parallelism
    replicas: list[Replica]
    memory: MemoryEstimate | None = None
    port: int | None = None


class CpuBinding(Strict):
    """The cores of each rank of one engine container on a CPU node."""

    role: RoleName
    replica: int = Field(ge=0)
    node: str
    # VLLM_CPU_OMP_THREADS_BIND: one CPU list per local rank, '|'-separated, ranks ordered
    # [DP, PP, TP] as vLLM slices it (e.g. "0-7|8-15").
    omp_threads_bind: str


class CpuPlan(Strict):
    """What a plan on CPU nodes adds for vLLM's CPU build (docs/cpu.md)."""

    kvcache_space_gib: int = Field(ge=1, description="VLLM_CPU_KVCACHE_SPACE, per rank")
    kv_cache_tokens_per_engine: int = Field(
        ge=0, description='what each engine logs as "CPU KV cache size: N tokens"'
    )
    block_size: int = Field(default=128, ge=1)
    shm_size: str = Field(description="the container's /dev/shm")
    bindings: list[CpuBinding]
    # Each rank's share of its node's memory bandwidth and BF16 peak (the prediction's inputs,
    # kept so `deploy bench` predicts at its own lengths and load).
    rank_bandwidth_gbs: float = Field(default=10.0, gt=0)
    rank_tflops: float = Field(default=0.1, gt=0)

    def binding(self, role: str, replica: int, node: str) -> CpuBinding | None:
        for item in self.bindings:
            if (item.role, item.replica, item.node) == (role, replica, node):
                return item
        return None


class Request(Strict):
    """What the user asked for, kept so the plan can be re-derived and explained."""

    goal: Goal = "balanced"
    context: int
    concurrency: int | None = None
    quantization: str | None = None
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    gpu_memory_utilization: float | None = None
    disagg: bool = False
    pins: dict[str, int] = {}
    engine_args: list[str] = []
    public: bool = False
    api_key_env: str | None = None
    # None: vLLM uses NIXL, SGLang picks Mooncake on RDMA nodes and NIXL elsewhere.
    kv_connector: Literal["nixl", "mooncake"] | None = None
    distributed_backend: Literal["mp", "ray"] = "mp"
    # The load the prediction is made at (None: the goal's default, docs/plan-json.md).
    isl: int | None = None
    osl: int | None = None
    request_rate: float | None = None
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    # GiB/s for a first start that downloads the checkpoint; None: the stated default; 0: the
    # weights are already in every node's cache.
    download_gib_per_s: float | None = None
    # The endpoint's port (--port); None: the engine release's default.
    port: int | None = Field(default=None, ge=1, le=65535)

    @model_serializer(mode="wrap")
    def _omit_later_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Fields added within schema 1 are left out at their defaults, so a plan that does not
        use them serializes (and hashes) exactly as before they existed."""
        data: dict[str, Any] = handler(self)
        for key in ("isl", "osl", "request_rate", "slo_ttft_ms", "slo_tpot_ms"):
            if data.get(key) is None:
                data.pop(key, None)
        if data.get("kv_connector") is None:
            data.pop("kv_connector", None)
        if data.get("distributed_backend") == "mp":
            data.pop("distributed_backend", None)
        if data.get("download_gib_per_s") is None:
            data.pop("download_gib_per_s", None)
        if data.get("port") is None:
            data.pop("port", None)
        return data


class Layout(Strict):
    """Where the deployment's pieces meet, decided by the planner and read by every renderer."""

    front_node: str = Field(
        description="the node of the router or load balancer (else of the only engine)"
    )
    spans_nodes: bool = Field(description="engines run on more than one node")
    bind: Literal["loopback", "all-interfaces"] = Field(
        description="where the endpoint users reach listens (--public: all interfaces)"
    )


def layout_of(roles: list[Role], nodes: list[NodeSummary], public: bool) -> Layout:
    """The layout facts of a plan's roles on its nodes."""
    used = {s.node for role in roles for r in role.replicas for s in r.slices}
    in_order = [node.name for node in nodes if node.name in used]
    router = next((role for role in roles if role.name == "router"), None)
    if router is not None and router.replicas and router.replicas[0].slices:
        front = router.replicas[0].slices[0].node
    else:
        front = in_order[0] if in_order else nodes[0].name
    return Layout(
        front_node=front,
        spans_nodes=len(in_order) > 1,
        bind="all-interfaces" if public else "loopback",
    )


class Plan(Strict):
    schema_version: int = SCHEMA_VERSION
    name: str = Field(description="deployment name")
    model: ModelSummary
    engine: EngineSummary
    hardware: HardwareSummary
    request: Request
    parallelism: Parallelism = Field(description="the serve role's, or decode's when disaggregated")
    roles: list[Role]
    memory: MemoryEstimate
    fits: bool
    rationale: list[Reason]
    alternatives: list[Alternative] = []
    warnings: list[str] = []
    suggestion: str | None = Field(default=None, description="smallest hardware that fits")
    prediction: Prediction | None = Field(
        default=None, description="the serve role's (decode's when disaggregated) forecast"
    )
    adjustments: list[Adjustment] = []
    # Set when the nodes serve on their CPUs (vLLM's CPU build); None on GPUs.
    cpu: CpuPlan | None = None
    layout: Layout | None = Field(
        default=None, description="front node, multi-node, bind policy (None: older plans)"
    )

    @model_serializer(mode="wrap")
    def _omit_missing_forecast(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A plan without a prediction, adjustments, a CPU part or layout serializes (and hashes) as
        before they existed."""
        data: dict[str, Any] = handler(self)
        if data.get("prediction") is None:
            data.pop("prediction", None)
        if not data.get("adjustments"):
            data.pop("adjustments", None)
        if data.get("cpu") is None:
            data.pop("cpu", None)
        if data.get("layout") is None:
            data.pop("layout", None)
        return data

    def placed(self) -> Layout:
        """The layout the planner recorded; derived the same way for plans written before."""
        if self.layout is not None:
            return self.layout
        return layout_of(self.roles, self.hardware.node_list, self.request.public)

    def role(self, name: RoleName) -> Role | None:
        return next((role for role in self.roles if role.name == name), None)

    def plan_hash(self) -> str:
        """A short, stable digest of the plan, used in container labels."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:12]
