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

# Bytes per parameter of a checkpoint format, for models outside the catalog (the catalog's
# own weight formula is used where the model is known).
_BYTES_PER_PARAM = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "mxfp4": 0.53}


def download_rate(plan: Plan) -> float:
    rate = plan.request.download_gib_per_s
    return DEFAULT_DOWNLOAD_GIB_PER_S if rate is None else rate


def checkpoint_gib(plan: Plan) -> float:
    """Size of the checkpoint as stored on the Hub (its own format, before any online
    quantization deploy asks the engine for)."""
    from orchestrator.errors import DeployError
    from orchestrator.memory import weight_bytes_per_gpu
    from orchestrator.models.lookup import find_model
    from orchestrator.plan import Parallelism

    try:
        profile = find_model(plan.model.name)
    except DeployError:
        per_param = _BYTES_PER_PARAM.get(plan.model.checkpoint_format, 2.0)
        return plan.model.params_total * per_param / GIB
    return weight_bytes_per_gpu(profile, Parallelism()) / GIB


def download_s(plan: Plan, simulate: bool) -> float:
    """Seconds a node spends downloading the checkpoint on a first start."""
    rate = download_rate(plan)
    if simulate or rate == 0 or plan.model.local_path is not None:
        return 0.0
    return checkpoint_gib(plan) / rate
