"""The CPU branch of `build_plan`: checks, the workload on CPU nodes, and its resolution."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.errors import PlanError
from orchestrator.plan import CpuPlan
from orchestrator.planning.cpu import check_model, eager_requested, engine_version
from orchestrator.planning.request import PlanRequest
from orchestrator.planning.resolver.context import Workload
from orchestrator.planning.resolver.select import Resolution
from orchestrator.schema import ModelProfile

if TYPE_CHECKING:
    from orchestrator.hardware.model import Cluster


def plan_on_cpu(
    request: PlanRequest, model: ModelProfile, cluster: Cluster
) -> tuple[PlanRequest, Workload, list[str], Resolution, CpuPlan]:
    """Refuse what CPU nodes cannot serve (one line each), then size and lay out the plan."""
    from orchestrator.models.engine_support import check_loadable
    from orchestrator.models.quantization import served_format
    from orchestrator.planning.build import workload_for
    from orchestrator.planning.cpu.resolve import resolve_cpu

    version = engine_version(request.engine, request.engine_version)
    if request.disagg and request.kv_connector == "mooncake":
        raise PlanError(
            "--kv-connector mooncake is not planned on CPU nodes",
            "drop --kv-connector: CPU nodes move KV caches with NIXL over TCP",
        )
    if request.prefill_gpus is not None or request.decode_gpus is not None:
        raise PlanError(
            "--prefill-gpus/--decode-gpus count GPUs; CPU nodes have none",
            "pin --tp for each engine instead",
        )
    if request.distributed_backend == "ray":
        raise PlanError(
            "--distributed-backend ray is not planned on CPU nodes (the CPU image has no Ray)",
            "drop --distributed-backend; vLLM's multiprocessing spans CPU nodes",
        )
    if request.max_gpus is not None:
        raise PlanError("--max-gpus counts GPUs; CPU nodes have none", "use --nodes instead")
    request = request.model_copy(update={"engine_version": version})
    work = workload_for(request, model, cluster)
    loading = check_loadable(model, "vllm", version)
    check_model(model, served_format(model.checkpoint, work.quantization), work.kv_cache_dtype)
    eager = eager_requested(request.engine_args)
    if request.disagg:
        from orchestrator.planning.cpu.disagg import resolve_cpu_disagg

        resolution, cpu = resolve_cpu_disagg(work, eager=eager)
    else:
        resolution, cpu = resolve_cpu(work, eager=eager)
    return request, work, [*model.warnings, *loading], resolution, cpu
