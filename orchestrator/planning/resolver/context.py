"""What the resolver works on: the request facts (`Workload`) and one layout (`Shape`).

`Shape` is a frozen, hashable twin of `plan.Parallelism` so memory estimates can be memoised
per layout; `Workload` bundles the model, the hardware and the user's wishes so every rule,
score and explanation reads the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from orchestrator.errors import InputError
from orchestrator.hardware.model import Cluster, Node
from orchestrator.plan import EngineName, Goal, MemoryEstimate, Parallelism
from orchestrator.schema import GpuSpec, ModelProfile

# Redundant expert slots the wide-EP recipes render (`--ep-num-redundant-experts 32`, vLLM's
# `--eplb-config '{"num_redundant_experts": 32}'`; profiles/recipes/wide-ep.yaml).
WIDE_EP_REDUNDANT = 32


class MemoryFunction(Protocol):
    """The signature of `orchestrator.planning.memory.estimate.estimate`."""

    def __call__(
        self,
        model: ModelProfile,
        gpu: GpuSpec,
        engine: str,
        par: Parallelism,
        *,
        context: int,
        kv_cache_dtype: str = "auto",
        quantization: str | None = None,
        memory_fraction: float | None = None,
        engine_version: str | None = None,
        concurrency: int | None = None,
        max_num_batched_tokens: int | None = None,
        enforce_eager: bool = False,
        redundant_experts: int = 0,
        phase: str = "both",
        cuda_graph_max_bs: int | None = None,
        draft_tokens: int = 0,
        deepep: bool = False,
    ) -> MemoryEstimate: ...


@dataclass(frozen=True, order=True)
class Shape:
    """Sizes of one engine instance (see `plan.Parallelism` for their meaning)."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    attn_dp: int = 1

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp

    def parallelism(self) -> Parallelism:
        return Parallelism(tp=self.tp, pp=self.pp, dp=self.dp, ep=self.ep, attn_dp=self.attn_dp)

    def label(self) -> str:
        return self.parallelism().label()

    @classmethod
    def of(cls, par: Parallelism) -> Shape:
        return cls(tp=par.tp, pp=par.pp, dp=par.dp, ep=par.ep, attn_dp=par.attn_dp)


NO_ROOM_FRACTION = 0.01
# Default lengths of the prediction: the 1k-in/1k-out point serving benchmarks report
# (InferenceMAX, vLLM and SGLang release notes), trimmed to the context.
DEFAULT_ISL, DEFAULT_OSL = 1024, 1024
# Concurrency each goal is judged at: one request for latency; 16 for balanced, where
# throughput per request starts to flatten on most layouts (the knee published sweeps show).
LATENCY_CONCURRENCY, BALANCED_CONCURRENCY = 1, 16
# The balanced goal's interactive SLO: first token within 2 s, 20 tokens/s per user (50 ms).
BALANCED_SLO_TTFT_MS, BALANCED_SLO_TPOT_MS = 2000.0, 50.0
PIN_NAMES = ("tp", "pp", "dp", "ep", "attn_dp")
PIN_FLAGS = {"tp": "TP", "pp": "PP", "dp": "DP", "ep": "EP", "attn_dp": "attention-DP"}


@dataclass
class Workload:
    """Everything a plan depends on, resolved (model found, hardware known, context set)."""

    model: ModelProfile
    cluster: Cluster
    engine: EngineName
    engine_version: str
    goal: Goal
    context: int
    memory_fn: MemoryFunction
    concurrency: int | None = None
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    memory_fraction: float | None = None
    pins: dict[str, int] = field(default_factory=dict)
    max_gpus: int | None = None
    # A disaggregated pool of a large MoE: one wide DP+EP instance over the whole pool.
    prefer_wide_ep: bool = False
    # The prediction's load: lengths, an open-loop rate, and the SLO (None: the goal's default).
    isl: int | None = None
    osl: int | None = None
    request_rate: float | None = None
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    # The user gave --context (near-fit may shorten only deploy's default).
    context_asked: bool = False
    # The prefill token budget per step (vLLM --max-num-batched-tokens); None: the engine's.
    max_num_batched_tokens: int | None = None
    # The user set the budget with --engine-arg (near-fit leaves it alone).
    batched_tokens_asked: bool = False
    # "prefill" or "decode" for a disaggregated pool (its prediction does one phase).
    phase: str = "both"
    # vLLM --enforce-eager: no CUDA graphs (less memory, slower steps); `eager_asked`: the
    # user decided with --engine-arg.
    enforce_eager: bool = False
    eager_asked: bool = False
    # Draft tokens per step with speculative decoding (EAGLE, MTP) the engine args ask for.
    speculative_tokens: int = 0
    # Decode steps per streamed chunk and the CUDA-graph batch cap the engine args set.
    stream_interval: int = 1
    cuda_graph_max_bs: int | None = None
    _memo: dict[Shape, MemoryEstimate] = field(default_factory=dict, repr=False)

    @property
    def gpu(self) -> GpuSpec:
        return self.cluster.gpu

    @property
    def nodes(self) -> list[Node]:
        return self.cluster.nodes

    @cached_property
    def gpus_per_node(self) -> int:
        return self.cluster.gpus_per_node

    @cached_property
    def usable_gpus(self) -> int:
        total = self.cluster.total_gpus
        return min(total, self.max_gpus) if self.max_gpus else total

    @property
    def needed_concurrency(self) -> int:
        """Full-context requests the deployment must hold at once (at least one)."""
        return max(1, self.concurrency or 1)

    @property
    def lengths(self) -> tuple[int, int]:
        """(input, output) tokens per request the prediction assumes, within the context."""
        osl = self.osl or min(DEFAULT_OSL, max(1, self.context // 2))
        isl = self.isl or max(1, min(DEFAULT_ISL, self.context - osl))
        return isl, osl

    @property
    def load_concurrency(self) -> int | None:
        """Requests in flight the goal is judged at (None: saturate, or the request rate)."""
        if self.request_rate is not None:
            return None
        if self.phase == "prefill":
            # Prompts pass through the prefill pool quickly: few are there at once.
            return LATENCY_CONCURRENCY
        if self.concurrency is not None:
            return self.concurrency
        if self.goal == "latency":
            return LATENCY_CONCURRENCY
        if self.goal == "balanced":
            return BALANCED_CONCURRENCY
        return None

    @property
    def slo(self) -> tuple[float | None, float | None]:
        """(TTFT ms, TPOT ms) a layout should meet; balanced has an interactive default."""
        if self.goal == "balanced":
            return (
                self.slo_ttft_ms or BALANCED_SLO_TTFT_MS,
                self.slo_tpot_ms or BALANCED_SLO_TPOT_MS,
            )
        return self.slo_ttft_ms, self.slo_tpot_ms

    def memory(self, shape: Shape) -> MemoryEstimate:
        """Per-GPU memory of one instance of `shape`, memoised: candidates share shapes."""
        cached = self._memo.get(shape)
        if cached is None:
            try:
                cached = self._estimate(shape, self.memory_fraction)
            except InputError:
                if self.memory_fraction is not None:
                    raise
                # The engine's default reserve exceeds the GPU (SGLang on a small card with
                # many ranks): nothing is left for weights, so size it with a token budget.
                cached = self._estimate(shape, NO_ROOM_FRACTION)
            self._memo[shape] = cached
        return cached

    def _estimate(self, shape: Shape, fraction: float | None) -> MemoryEstimate:
        return self.memory_fn(
            self.model,
            self.gpu,
            self.engine,
            shape.parallelism(),
            context=self.context,
            kv_cache_dtype=self.kv_cache_dtype,
            quantization=self.quantization,
            memory_fraction=fraction,
            engine_version=self.engine_version,
            max_num_batched_tokens=self.max_num_batched_tokens,
            enforce_eager=self.enforce_eager,
            redundant_experts=self.redundant_experts(shape),
            phase=self.phase,
            cuda_graph_max_bs=self.cuda_graph_max_bs,
            draft_tokens=self.speculative_tokens,
            deepep=self.deepep(shape),
        )

    def deepep(self, shape: Shape) -> bool:
        """Whether SGLang runs this shape's experts over DeepEP (`Parallelism.sglang_deepep`)."""
        return (
            self.engine == "sglang"
            and self.model.moe is not None
            and shape.parallelism().sglang_deepep(self.gpus_per_node)
        )

    def default_fraction(self, shape: Shape) -> float:
        """The memory fraction deploy renders for `shape` unless a layout needs more: vLLM's
        0.9, or SGLang's own reserve for the layout, the role and the engine arguments, less
        its attention-DP padding (`planning.memory.sglang_defaults`)."""
        from orchestrator.planning.memory.estimate import default_memory_fraction

        return default_memory_fraction(
            self.engine,
            self.gpu,
            shape.parallelism(),
            self.engine_version,
            mla=self.model.attention == "mla",
            phase=self.phase,
            chunked_prefill=self.max_num_batched_tokens,
            cuda_graph_max_bs=self.cuda_graph_max_bs,
            draft_tokens=self.speculative_tokens,
            deepep=self.deepep(shape),
            cuda_graphs=not self.enforce_eager,
        )

    def redundant_experts(self, shape: Shape) -> int:
        """Expert slots beyond the routed experts the rendered command will hold: the
        wide-EP recipes (profiles/recipes/wide-ep.yaml) add at least 32 when the experts of
        one instance span nodes, rounded up so routed + redundant divide over the EP ranks."""
        moe = self.model.moe
        if moe is None or shape.ep <= max(1, self.gpus_per_node):
            return 0
        return WIDE_EP_REDUNDANT + (-(moe.num_experts + WIDE_EP_REDUNDANT)) % shape.ep

    def with_cluster(
        self,
        cluster: Cluster,
        *,
        max_gpus: int | None = None,
        goal: Goal | None = None,
        prefer_wide_ep: bool = False,
        pins: dict[str, int] | None = None,
        phase: str | None = None,
    ) -> Workload:
        """The same request on other hardware (disaggregated pools, suggestions)."""
        return Workload(
            model=self.model,
            cluster=cluster,
            engine=self.engine,
            engine_version=self.engine_version,
            goal=goal or self.goal,
            context=self.context,
            memory_fn=self.memory_fn,
            concurrency=self.concurrency,
            quantization=self.quantization,
            kv_cache_dtype=self.kv_cache_dtype,
            memory_fraction=self.memory_fraction,
            pins=dict(self.pins) if pins is None else pins,
            max_gpus=max_gpus,
            prefer_wide_ep=prefer_wide_ep,
            isl=self.isl,
            osl=self.osl,
            request_rate=self.request_rate,
            slo_ttft_ms=self.slo_ttft_ms,
            slo_tpot_ms=self.slo_tpot_ms,
            context_asked=self.context_asked,
            max_num_batched_tokens=self.max_num_batched_tokens,
            batched_tokens_asked=self.batched_tokens_asked,
            phase=phase or self.phase,
            enforce_eager=self.enforce_eager,
            eager_asked=self.eager_asked,
            speculative_tokens=self.speculative_tokens,
            stream_interval=self.stream_interval,
            cuda_graph_max_bs=self.cuda_graph_max_bs,
            # The per-shape estimates stay valid for the same GPU type, role and node size
            # (SGLang's reserve depends on the role and on experts spanning nodes).
            _memo=self._memo if self._same_memory(cluster, phase or self.phase) else {},
        )

    def _same_memory(self, cluster: Cluster, phase: str) -> bool:
        return (
            cluster.gpu == self.gpu
            and phase == self.phase
            and cluster.gpus_per_node == self.gpus_per_node
        )
