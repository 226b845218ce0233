"""How close the memory planner comes to real engine startup logs.

Compares `orchestrator.planning.memory.estimate.estimate` with every observation in
`fixtures/memory-observations-dev.json` (vLLM startup-log figures published in the llm-d
benchmark report): weights per GPU, available KV cache GiB and KV tokens. Models that are not in
the catalog are read from `fixtures/models/<name>/config.json` through `find_model(path)`.
Observed KV tokens come from the log when it prints them, else from the observed KV GiB through
the same block arithmetic the planner uses, so the token error isolates the budget error.

Run: python benchmarks/memory_accuracy.py
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from orchestrator.hardware.gpus import find_gpu, gpu_from_nvml_name  # noqa: E402
from orchestrator.models.lookup import find_model  # noqa: E402
from orchestrator.plan import Parallelism  # noqa: E402
from orchestrator.planning.memory.estimate import GIB, estimate, kv_capacity  # noqa: E402
from orchestrator.schema import GpuSpec, ModelProfile  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OBSERVATIONS = FIXTURES / "memory-observations-dev.json"


@dataclass(frozen=True)
class Row:
    obs_id: str
    model: str
    setup: str
    weights_obs: float
    weights_pred: float
    kv_obs: float
    kv_pred: float
    tokens_obs: int
    tokens_pred: int
    status: str

    @property
    def weights_err(self) -> float:
        return (self.weights_pred - self.weights_obs) / self.weights_obs

    @property
    def kv_err(self) -> float:
        return (self.kv_pred - self.kv_obs) / abs(self.kv_obs)

    @property
    def tokens_err(self) -> float:
        if self.tokens_obs == 0:
            return 0.0 if self.tokens_pred == 0 else math.inf
        return (self.tokens_pred - self.tokens_obs) / self.tokens_obs


def _model_for(observation: dict[str, object]) -> ModelProfile:
    model_id = str(observation["model"]).split()[0]
    local = FIXTURES / "models" / model_id.rsplit("/", 1)[-1]
    return find_model(str(local) if local.is_dir() else model_id)


def _gpu_for(observation: dict[str, object]) -> GpuSpec:
    name = str(observation["gpu"])
    spec = gpu_from_nvml_name(name) or find_gpu(name)
    total = observation.get("gpu_memory_total_gib")
    return spec.model_copy(update={"memory_gib": float(total)}) if total else spec


def _engine_version(text: str) -> str:
    match = re.search(r"v(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        raise ValueError(f"no engine version in {text!r}")
    return f"{match.group(1)}.{match.group(2)}.{match.group(3) or 0}"


def _batched_tokens(observation: dict[str, object]) -> int | None:
    match = re.search(r"max_num_batched_tokens=(\d+)", str(observation.get("notes", "")))
    return int(match.group(1)) if match else None


def compare(observation: dict[str, object]) -> Row:
    model = _model_for(observation)
    gpu = _gpu_for(observation)
    par = Parallelism(
        tp=int(observation["tp"]),  # type: ignore[call-overload]
        pp=int(observation["pp"]),  # type: ignore[call-overload]
        dp=int(observation["dp"]),  # type: ignore[call-overload]
    )
    observed = observation["observed"]
    assert isinstance(observed, dict)
    context = int(observation["max_model_len"])  # type: ignore[call-overload]
    block = int(observation.get("block_size_or_page_size") or 16)  # type: ignore[call-overload]
    batch = _batched_tokens(observation)
    kv_dtype = str(observation.get("kv_cache_dtype") or "auto")
    result = estimate(
        model,
        gpu,
        str(observation["engine"]),
        par,
        context=context,
        kv_cache_dtype=kv_dtype,
        memory_fraction=float(observation["gpu_memory_utilization"]),  # type: ignore[arg-type]
        engine_version=_engine_version(str(observation["engine_version"])),
        block_size=block,
        max_num_batched_tokens=batch,
    )
    kv_obs = float(observed["available_kv_cache_gib"])
    tokens_obs = observed.get("gpu_kv_cache_tokens")
    if tokens_obs is None:
        tokens_obs = kv_capacity(
            model,
            par,
            str(observation["engine"]),
            kv_obs * GIB,
            context=context,
            kv_cache_dtype=kv_dtype,
            block_size=block,
            max_num_batched_tokens=batch or 8192,
        ).tokens_per_pool
    return Row(
        obs_id=str(observation["id"]),
        model=model.name,
        setup=f"{gpu.name} TP{par.tp} util {observation['gpu_memory_utilization']}",
        weights_obs=float(observed["weights_gib"]),
        weights_pred=result.weights_gib_per_gpu,
        kv_obs=kv_obs,
        kv_pred=result.kv_cache_gib_per_gpu,
        tokens_obs=int(tokens_obs),
        tokens_pred=result.kv_cache_tokens,
        status=str(observation.get("status", "")).split()[0],
    )


def load_rows(path: Path = OBSERVATIONS) -> list[Row]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [compare(observation) for observation in data["observations"]]


def _pct(value: float) -> str:
    return "   inf" if math.isinf(value) else f"{value * 100:+6.1f}%"


def report(rows: list[Row]) -> str:
    lines = [
        f"{'obs':<7} {'model':<36} {'weights GiB obs/pred':>21} {'err':>7}  "
        f"{'KV GiB obs/pred':>17} {'err':>7}  {'KV tokens obs/pred':>21} {'err':>7}  status",
    ]
    for row in rows:
        lines.append(
            f"{row.obs_id:<7} {row.model:<36} {row.weights_obs:>9.2f} /{row.weights_pred:>9.2f} "
            f"{_pct(row.weights_err)}  {row.kv_obs:>7.2f} /{row.kv_pred:>7.2f} "
            f"{_pct(row.kv_err)}  {row.tokens_obs:>9} /{row.tokens_pred:>9} "
            f"{_pct(row.tokens_err)}  {row.status}"
        )
    weights = statistics.median(abs(row.weights_err) for row in rows)
    kv = statistics.median(abs(row.kv_err) for row in rows)
    tokens = statistics.median(abs(row.tokens_err) for row in rows)
    lines.append("")
    lines.append(f"median |error| weights   : {weights * 100:.2f}%  (goal < 3%)")
    lines.append(f"median |error| KV GiB    : {kv * 100:.2f}%")
    lines.append(f"median |error| KV tokens : {tokens * 100:.2f}%  (goal < 10%)")
    return "\n".join(lines)


def medians(rows: list[Row]) -> dict[str, float]:
    return {
        "weights": statistics.median(abs(row.weights_err) for row in rows),
        "kv_gib": statistics.median(abs(row.kv_err) for row in rows),
        "kv_tokens": statistics.median(abs(row.tokens_err) for row in rows),
    }


def timings(repeat: int = 20) -> str:
    """Catalog load time (cold caches) and the cost of one `estimate`, both on the plan path."""
    import time

    from orchestrator.hardware import gpus as catalog
    from orchestrator.models import catalog as model_catalog

    loads = []
    for _ in range(repeat):
        for cached in (
            model_catalog.load_models,
            catalog.load_gpus,
            model_catalog._model_index,
            catalog._gpu_index,
        ):
            cached.cache_clear()
        start = time.perf_counter()
        find_model("deepseek-r1")
        catalog.find_gpu("h100")
        loads.append(time.perf_counter() - start)
    model, gpu = find_model("deepseek-r1"), find_gpu("h100")
    layouts = [Parallelism(tp=tp, pp=pp) for tp in (1, 2, 4, 8) for pp in (1, 2)]
    start = time.perf_counter()
    for _ in range(250):
        for par in layouts:
            estimate(model, gpu, "vllm", par, context=32768)
    per_estimate = (time.perf_counter() - start) / (250 * len(layouts))
    return (
        f"catalog load ({len(model_catalog.load_models())} models + {len(catalog.load_gpus())} GPUs, "
        f"cold): median {statistics.median(loads) * 1e3:.1f} ms"
        f" (budget 50 ms)\n"
        f"memory.estimate: {per_estimate * 1e6:.0f} us per call"
    )


def main() -> int:
    rows = load_rows()
    print(report(rows))
    print()
    print(timings())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
