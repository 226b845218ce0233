"""The parallelism resolver: from a `Workload` to roles, reasons, alternatives and warnings.

Data flows one way through small modules, each one job:
- `context`: the request facts (`Workload`) and one layout (`Shape`);
- `candidates`: the shape space, each judged by `rules` (hard validity, soft policies, pins),
  placed by `placement` and sized by the memory estimate;
- `scoring`: the goal's ordered criteria (the performance prediction among them) and the
  reason a layout lost; `select`: one role's winner;
- `explain`: one `Reason` per decision, alternatives, warnings; `suggest`: the smallest
  hardware that fits; `single`: a `serve` role from all of these;
- `disagg`: prefill/decode pools, a layer on top of `select` and `single`.
"""

from __future__ import annotations

from orchestrator.planning.resolver.context import Shape, Workload
from orchestrator.planning.resolver.rules import validate
from orchestrator.planning.resolver.select import Resolution, select

__all__ = ["Resolution", "Shape", "Workload", "resolve", "select", "validate"]


def resolve(
    work: Workload, *, disagg: bool = False, pools: dict[str, int] | None = None
) -> Resolution:
    """Plan one request: a `serve` role, or `prefill` + `decode` + `router` with `disagg`."""
    if disagg:
        from orchestrator.planning.resolver.disagg import resolve_disagg

        return resolve_disagg(work, pools or {})
    from orchestrator.planning.resolver.single import resolve_single

    return resolve_single(work)
