"""Layouts ranked as measurements rank them: the model against measured comparisons.

A comparison (the dev set's format) is one machine, one client and one load, with only the
parallel flags differing between its layouts. For every pair of layouts that measured at least
`MIN_GAP` apart in output per GPU, the model must order them the same way; and the layout it
predicts the most output per GPU for must be the measured best.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.planning.performance.efficiency import CALIBRATED, Efficiency
from orchestrator.planning.performance.observations import ModelFinder, case_of
from orchestrator.planning.performance.serving import forecast

MIN_GAP = math.log(1.10)


@dataclass(frozen=True)
class Judged:
    label: str
    measured_per_gpu: float
    predicted_per_gpu: float


@dataclass(frozen=True)
class Comparison:
    id: str
    layouts: list[Judged]
    best_measured: str

    @property
    def best_predicted(self) -> str:
        return max(self.layouts, key=lambda j: j.predicted_per_gpu).label

    @property
    def best_picked(self) -> bool:
        return self.best_predicted == self.best_measured

    def picked_within(self, share: float) -> bool:
        """The predicted best measured within `share` of the measured best: a gap that small is
        within one benchmark's run-to-run spread, so either layout is a right answer."""
        measured = {judged.label: judged.measured_per_gpu for judged in self.layouts}
        return measured[self.best_predicted] >= (1 - share) * measured[self.best_measured]

    def pairs(self) -> list[tuple[Judged, Judged, bool]]:
        """(better measured, worse measured, ordered right) for pairs at least MIN_GAP apart."""
        out = []
        for i, a in enumerate(self.layouts):
            for b in self.layouts[i + 1 :]:
                gap = math.log(a.measured_per_gpu / b.measured_per_gpu)
                if abs(gap) < MIN_GAP:
                    continue
                hi, lo = (a, b) if gap > 0 else (b, a)
                out.append((hi, lo, hi.predicted_per_gpu > lo.predicted_per_gpu))
        return out


def _entry_for(
    layout: Mapping[str, Any],
    comparison: Mapping[str, Any],
    entries: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """The observation a layout was measured as, or (for layouts only the comparison lists)
    the comparison's first entry with this layout's flags."""
    found = entries.get(str(layout.get("entry_id")))
    if found is not None:
        return dict(found)
    base = next(
        entries[str(other["entry_id"])]
        for other in comparison["layouts"]
        if other.get("entry_id") in entries
    )
    entry = dict(base)
    for key in ("tp", "pp", "dp", "ep", "dp_attention"):
        entry[key] = layout.get(key)
    entry["id"] = f"{comparison['id']}:{layout['layout']}"
    return entry


def judge(
    comparison: Mapping[str, Any],
    entries: Mapping[str, Mapping[str, Any]],
    find: ModelFinder,
    eff: Efficiency = CALIBRATED,
) -> Comparison:
    judged: list[Judged] = []
    for layout in comparison["layouts"]:
        case = case_of(_entry_for(layout, comparison, entries), find)
        result = forecast(
            case.instance, case.traffic, kv_tokens=case.kv_tokens, context=case.context, eff=eff
        )
        measured = layout["derived_per_gpu"]["total_tokens_per_s_per_gpu"]
        predicted = result.output_tokens_per_s_per_gpu * (
            (case.traffic.isl + case.traffic.osl) / case.traffic.osl
        )
        judged.append(Judged(str(layout["layout"]), float(measured), predicted))
    return Comparison(
        id=str(comparison["id"]),
        layouts=judged,
        best_measured=str(comparison["best_for_throughput_per_gpu"]["layout"]),
    )


def judge_all(
    comparisons: Sequence[Mapping[str, Any]],
    observations: Sequence[Mapping[str, Any]],
    find: ModelFinder,
    eff: Efficiency = CALIBRATED,
) -> list[Comparison]:
    entries = {str(entry["id"]): entry for entry in observations}
    return [judge(comparison, entries, find, eff) for comparison in comparisons]
