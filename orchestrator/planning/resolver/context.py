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


class MemoryFunction(Protocol):
    """The signature of `orchestrator.memory.estimate`."""

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
        )

    def with_cluster(
        self,
        cluster: Cluster,
        *,
        max_gpus: int | None = None,
        goal: Goal | None = None,
        prefer_wide_ep: bool = False,
        pins: dict[str, int] | None = None,
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
            # Same GPU type: the per-shape estimates stay valid.
            _memo=self._memo if cluster.gpu == self.gpu else {},
        )
