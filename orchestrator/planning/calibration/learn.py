"""Factors from bench results: measured over predicted, per (GPU, engine, version).

A `deploy bench` of a deployment `deploy` planned writes, beside each measured level, the
plan's uncalibrated prediction at that level's lengths and load (`predicted`), and the facts
of the plan (`planned`: GPU, engine, version, cluster, layout). For every usable level the
ratios measured/predicted of median TPOT (decode) and median TTFT (prefill) are taken; a run
contributes the median of its levels' log ratios, and a calibration is the geometric median
over its runs. Levels are skipped when the client could not keep up (client-bound), when a
tenth or more of the requests failed, or when nothing was predicted.

Communication cannot be told apart from decode in one layout's end-to-end timings; it is
learned when the same (GPU, engine, version) was benched both on one GPU per instance and on
several: the multi-GPU runs' decode ratio over the single-GPU runs' is the communication
factor (1.0 until both exist).
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.errors import InputError
from orchestrator.planning.calibration import Calibration

MAX_ERROR_SHARE = 0.1


def _median_ms(level: Mapping[str, Any], key: str) -> float | None:
    dist = level.get(key)
    if not isinstance(dist, Mapping):
        return None
    value = dist.get("p50")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def _usable(level: Mapping[str, Any]) -> bool:
    client = level.get("client")
    if isinstance(client, Mapping) and client.get("client_bound"):
        return False
    if level.get("failure"):
        return False
    requests = level.get("requests") or 0
    errors = level.get("errors") or {}
    failed = sum(errors.values()) if isinstance(errors, Mapping) else int(errors or 0)
    return bool(requests) and failed < MAX_ERROR_SHARE * requests


def run_from_result(document: Mapping[str, Any], source: str) -> dict[str, Any]:
    """One run's summary (what the store keeps) from a bench result.json document."""
    planned = document.get("planned")
    predicted = document.get("predicted")
    levels = document.get("levels")
    if not isinstance(planned, Mapping) or not isinstance(predicted, list):
        raise InputError(
            f"{source}: no prediction to compare with",
            "bench a deployment deploy planned: `deploy bench NAME --out DIR`",
        )
    if not isinstance(levels, list):
        raise InputError(f"{source}: not a `deploy bench` result (no levels)")
    decode: list[float] = []
    prefill: list[float] = []
    for level, forecast in zip(levels, predicted, strict=False):
        if not isinstance(level, Mapping) or not isinstance(forecast, Mapping):
            continue
        if not _usable(level):
            continue
        tpot, ttft = _median_ms(level, "tpot_ms"), _median_ms(level, "ttft_ms")
        predicted_tpot, predicted_ttft = forecast.get("tpot_ms"), forecast.get("ttft_ms")
        if tpot and isinstance(predicted_tpot, (int, float)) and predicted_tpot > 0:
            decode.append(math.log(tpot / predicted_tpot))
        if ttft and isinstance(predicted_ttft, (int, float)) and predicted_ttft > 0:
            prefill.append(math.log(ttft / predicted_ttft))
    if not decode and not prefill:
        raise InputError(
            f"{source}: no level can be compared (client-bound, failing or unpredicted)",
            "bench again with fewer client-side limits, or more requests per level",
        )
    for key in ("gpu", "engine", "engine_version"):
        if not isinstance(planned.get(key), str) or not planned.get(key):
            raise InputError(f"{source}: field 'planned.{key}' is missing")
    started = str(document.get("started_at") or "")
    identity = f"{started}|{document.get('url')}|{planned.get('deployment')}"
    return {
        "id": hashlib.sha256(identity.encode()).hexdigest()[:16],
        "date": started[:10],
        "gpu": planned["gpu"],
        "engine": planned["engine"],
        "engine_version": planned["engine_version"],
        "cluster": str(planned.get("cluster") or ""),
        "gpus_per_instance": int(planned.get("gpus_per_instance") or 1),
        "levels": max(len(decode), len(prefill)),
        "log_decode": statistics.median(decode) if decode else None,
        "log_prefill": statistics.median(prefill) if prefill else None,
    }


def _geometric_median(values: Iterable[float | None]) -> float | None:
    found = [value for value in values if isinstance(value, (int, float))]
    return math.exp(statistics.median(found)) if found else None


def factors_from_runs(runs: Iterable[Mapping[str, Any]]) -> tuple[Calibration, ...]:
    """One Calibration per (GPU, engine, version) over every stored run of it."""
    from orchestrator.planning.calibration.store import clamp

    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for run in runs:
        if not isinstance(run, Mapping):
            continue
        key = (str(run.get("gpu")), str(run.get("engine")), str(run.get("engine_version")))
        groups.setdefault(key, []).append(run)
    found = []
    for (gpu, engine, version), members in sorted(groups.items()):
        single = [run for run in members if int(run.get("gpus_per_instance") or 1) == 1]
        multi = [run for run in members if int(run.get("gpus_per_instance") or 1) > 1]
        decode = _geometric_median(run.get("log_decode") for run in (single or members))
        communication = 1.0
        if single and multi and decode:
            spread = _geometric_median(run.get("log_decode") for run in multi)
            communication = clamp(spread / decode) if spread else 1.0
        prefill = _geometric_median(run.get("log_prefill") for run in members)
        clusters = sorted({str(run.get("cluster")) for run in members if run.get("cluster")})
        found.append(
            Calibration(
                gpu=gpu,
                engine=engine,
                engine_version=version,
                prefill=round(clamp(prefill or 1.0), 4),
                decode=round(clamp(decode or 1.0), 4),
                communication=round(communication, 4),
                runs=len(members),
                levels=sum(int(run.get("levels") or 0) for run in members),
                learned_on=max(str(run.get("date") or "") for run in members),
                clusters=tuple(clusters),
            )
        )
    return tuple(found)
