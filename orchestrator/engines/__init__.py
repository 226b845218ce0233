"""Engine renderers: a `Plan` becomes the `ServiceSpec`s of its containers.

`build_services` is the one entry point. Every command line it produces (engines, routers and
the user's `--engine-arg` extras inside them) is checked against the flag schema of the exact
engine version, so a flag the target version does not know fails here, before anything starts.
"""

from __future__ import annotations

from orchestrator.plan import Plan
from orchestrator.spec import ServiceSpec


def build_services(plan: Plan, *, simulate: bool = False) -> list[ServiceSpec]:
    """The containers of `plan`: engines (prefill, decode, serve; rank order), then the
    router or load balancer. `simulate` swaps the image for the simulator's and drops GPUs,
    RDMA devices and host networking for engines; command lines stay the engines' own."""
    from orchestrator.engines import routers, sglang, vllm
    from orchestrator.engines.common import runs_engine
    from orchestrator.engines.flags import check_argv

    engines: list[ServiceSpec] = (
        vllm.build(plan, simulate) if plan.engine.name == "vllm" else sglang.build(plan, simulate)
    )
    for spec in engines:
        if not runs_engine(spec):
            continue  # `ray start` (see common.RAY_ENTRYPOINT)
        check_argv(plan.engine.name, plan.engine.version, spec.command)
    fronts = routers.build(plan, engines, simulate)
    for spec in fronts:
        if spec.role == "router":
            program, version = routers.router_program(plan)
            check_argv(program, version, spec.command)
    return engines + fronts
