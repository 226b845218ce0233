"""Efficiency factors learned from the user's own `deploy bench` runs (`deploy calibrate`).

The interface between this package and the performance model is the `Calibration` record and
one hook, `scale_forecast`:

* A `Calibration` holds three multiplicative factors for one (catalog GPU, engine, engine
  version): `prefill` multiplies predicted prefill time (TTFT), `decode` predicted decode
  step time (TPOT), `communication` predicted collective time (TP all-reduce, EP all-to-all,
  cross-node). 1.0 means "as the model predicts"; 0.8 means "measured 20% faster".
* `calibration_for(gpu, engine, version)` finds the record for a plan (None when there is
  none: the file is read only when it exists, once per process).
* `scale_forecast(forecast, calibration)` is the single place the factors are multiplied in.
  Today it scales the model's output (TTFT by `prefill`; TPOT by `decode`, and by
  `communication` for the communication share the model reports when it reports one;
  throughputs inversely with TPOT). A model with separate prefill / decode / communication
  terms multiplies each term instead, in the same place.

`learn` derives the factors from bench results; `store` keeps them (atomic writes) in the
user's state directory; `citation` is the line a plan prints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

FACTOR_MIN, FACTOR_MAX = 0.05, 20.0


@dataclass(frozen=True)
class Calibration:
    """Multiplicative factors for one (GPU, engine, version), and what they were learned on."""

    gpu: str
    engine: str
    engine_version: str
    prefill: float = 1.0
    decode: float = 1.0
    communication: float = 1.0
    runs: int = 0
    levels: int = 0
    learned_on: str = ""  # ISO date of the newest run
    clusters: tuple[str, ...] = ()

    def citation(self) -> str:
        """'calibrated on 3 runs on cluster lab-h100, 2026-12-06 (decode x0.82, prefill x1.10)'."""
        where = f" on cluster {', '.join(self.clusters)}" if self.clusters else ""
        plural = "run" if self.runs == 1 else "runs"
        factors = [f"decode x{self.decode:.2f}", f"prefill x{self.prefill:.2f}"]
        if self.communication != 1.0:
            factors.append(f"communication x{self.communication:.2f}")
        return (
            f"calibrated on {self.runs} {plural}{where}, {self.learned_on} "
            f"({', '.join(factors)}; {self.engine} {self.engine_version} on {self.gpu})"
        )


F = TypeVar("F")


def scale_forecast(forecast: F, calibration: Calibration | None) -> F:
    """The forecast with the calibration's factors multiplied in (unchanged without one).

    `forecast` is the performance model's result (a frozen dataclass with ttft_ms, tpot_ms
    and throughputs). Decode time scales TPOT; at the same load, throughput scales inversely.
    An optional `communication_ms` share of TPOT (a model that reports one) takes the
    communication factor instead of the decode factor.
    """
    if calibration is None:
        return forecast
    values: dict[str, Any] = dataclasses.asdict(forecast)  # type: ignore[call-overload]
    tpot = float(values["tpot_ms"])
    comm = float(values.get("communication_ms") or 0.0)
    scaled_tpot = (tpot - comm) * calibration.decode + comm * calibration.communication
    ratio = scaled_tpot / tpot if tpot > 0 else calibration.decode
    changes: dict[str, Any] = {
        "ttft_ms": float(values["ttft_ms"]) * calibration.prefill,
        "tpot_ms": scaled_tpot,
    }
    for name in (
        "output_tokens_per_s",
        "input_tokens_per_s",
        "output_tokens_per_s_per_gpu",
        "requests_per_s",
    ):
        if name in values and ratio > 0:
            changes[name] = float(values[name]) / ratio
    if "communication_ms" in values and values["communication_ms"] is not None:
        changes["communication_ms"] = comm * calibration.communication
    return dataclasses.replace(forecast, **changes)  # type: ignore[type-var]


def calibration_for(gpu: str, engine: str, engine_version: str | None) -> Calibration | None:
    """The stored calibration of (GPU, engine, version), or None (no file: nothing is read)."""
    if not engine_version:
        return None
    from orchestrator.planning.calibration.store import load_calibrations

    for entry in load_calibrations():
        if (entry.gpu, entry.engine, entry.engine_version) == (gpu, engine, engine_version):
            return entry
    return None
