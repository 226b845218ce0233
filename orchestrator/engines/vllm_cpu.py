"""What vLLM's CPU build needs around the command line the vLLM renderer wrote.

From the plan's CPU part (planning/cpu): `VLLM_CPU_KVCACHE_SPACE` (GiB per rank; unset, vLLM
reserves 0.92 of host memory and fails on a shared host), `VLLM_CPU_OMP_THREADS_BIND` (each
local rank's cores, '|'-separated), a private IPC namespace with its own /dev/shm (Docker's
64 MB default kills even TP1), no GPU device request, and no `--gpu-memory-utilization`: with
an explicit KV space the CPU worker does not read it (vllm/v1/worker/cpu_worker.py).
"""

from __future__ import annotations

import math

from orchestrator.engines.common import CUDA_GRAPHS_S, Argv, Placement, finish, sorted_env
from orchestrator.errors import PlanError
from orchestrator.spec import FlagSource, ServiceSpec

# Flags whose meaning on GPUs does not carry over to the CPU worker.
DROPPED = frozenset({"--gpu-memory-utilization"})
# The CPU build compiles the model with torch inductor at start (C++ kernels built by the
# host's compiler, on the engine's own few cores) where the GPU build captures CUDA graphs:
# minutes on a small or busy host, so the health-check start period allows for it.
CPU_COMPILE_S = 420


def cpu_argv(argv: Argv) -> Argv:
    """The argv without the GPU memory fraction."""
    return Argv([item for item in argv.items if item[1].flag not in DROPPED])


def cpu_spec(place: Placement, spec: ServiceSpec) -> ServiceSpec:
    """`spec` as vLLM's CPU build runs it: binding and KV space, shm, no GPUs."""
    plan = place.plan
    cpu = plan.cpu
    assert cpu is not None
    binding = cpu.binding(place.role.name, place.replica.index, place.node.name)
    if binding is None:
        raise PlanError(
            f"the plan has no CPU binding for {spec.name} on {place.node.name}",
            "re-run deploy plan (the plan file predates its CPU part)",
        )
    environment = dict(spec.environment)
    flags = list(spec.flags)
    if not place.simulate:
        environment["VLLM_CPU_KVCACHE_SPACE"] = str(cpu.kvcache_space_gib)
        environment["VLLM_CPU_OMP_THREADS_BIND"] = binding.omp_threads_bind
        flags += [
            FlagSource(
                flag="VLLM_CPU_KVCACHE_SPACE",
                value=str(cpu.kvcache_space_gib),
                origin="resolver",
                why=f"KV space per rank: {cpu.kv_cache_tokens_per_engine:,} tokens per engine",
            ),
            FlagSource(
                flag="VLLM_CPU_OMP_THREADS_BIND",
                value=binding.omp_threads_bind,
                origin="resolver",
                why="each local rank's OpenMP threads on its own cores",
            ),
        ]
    probe = spec.probe
    if not place.simulate:
        start = probe.start_period_s - CUDA_GRAPHS_S + CPU_COMPILE_S
        probe = probe.model_copy(update={"start_period_s": int(math.ceil(start / 60.0) * 60)})
    updated = spec.model_copy(
        update={
            "probe": probe,
            "environment": sorted_env(environment),
            "gpus": None,
            "ipc_mode": "private",
            "shm_size": cpu.shm_size,
            "flags": flags,
        }
    )
    return finish(updated, plan)
