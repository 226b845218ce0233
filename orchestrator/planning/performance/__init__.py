"""The performance model: TTFT, TPOT and throughput of a layout, from physics and a few
calibrated efficiencies (docs/performance.md)."""

from __future__ import annotations

from orchestrator.planning.performance.efficiency import CALIBRATED, Efficiency
from orchestrator.planning.performance.serving import Forecast, Traffic, forecast
from orchestrator.planning.performance.steps import Instance

__all__ = ["CALIBRATED", "Efficiency", "Forecast", "Instance", "Traffic", "forecast"]
