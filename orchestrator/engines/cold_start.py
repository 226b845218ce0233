"""Cold starts: time for a node to download the checkpoint before it can load it.

A node whose Hugging Face cache lacks the checkpoint downloads all of it (every rank of a
multi-node instance reads its shards from a full local snapshot), and only then starts loading.
Health-check start periods cover that download, so a first start is not declared failed, and a
front held back by `depends_on: service_healthy` is not aborted, while 640 GiB arrive. The rate
is a stated default (`DEFAULT_DOWNLOAD_GIB_PER_S`, about 2 Gbit/s sustained from the Hub),
overridden by `--download-rate`; `--download-rate 0` says the weights are pre-fetched. A local
model directory downloads nothing, and a rehearsal has no weights to fetch.
"""

from __future__ import annotations

from orchestrator.plan import Plan

DEFAULT_DOWNLOAD_GIB_PER_S = 0.25
GIB = 1024**3


def download_rate(plan: Plan) -> float:
    rate = plan.request.download_gib_per_s
    return DEFAULT_DOWNLOAD_GIB_PER_S if rate is None else rate


def checkpoint_gib(plan: Plan) -> float:
    """Size of the checkpoint as stored on the Hub (its own format, before any online
    quantization deploy asks the engine for), as the planner recorded it."""
    size = plan.model.checkpoint_bytes
    if size is None:
        from orchestrator.errors import PlanError

        raise PlanError(
            f"the plan of {plan.name} does not record the checkpoint's size (written by an "
            "older deploy)",
            "plan it again: `deploy render` or `deploy up` with the same options",
        )
    return size / GIB


def download_s(plan: Plan, simulate: bool) -> float:
    """Seconds a node spends downloading the checkpoint on a first start."""
    rate = download_rate(plan)
    if simulate or rate == 0 or plan.model.local_path is not None:
        return 0.0
    return checkpoint_gib(plan) / rate
