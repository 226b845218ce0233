"""The planner against the published vLLM startup logs (benchmarks/memory_accuracy.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "memory_accuracy.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("memory_accuracy", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_observation_is_compared_and_medians_meet_the_goals() -> None:
    accuracy = _module()
    rows = accuracy.load_rows()
    assert [row.obs_id for row in rows] == [f"obs-0{i}" for i in range(1, 10)]
    medians = accuracy.medians(rows)
    assert medians["weights"] < 0.03
    assert medians["kv_tokens"] < 0.10
    # The run that failed for lack of KV room is predicted to fail too.
    failed = next(row for row in rows if row.obs_id == "obs-04")
    assert failed.kv_pred < 0 and failed.tokens_pred == 0


def test_report_prints_one_line_per_observation_and_the_medians() -> None:
    accuracy = _module()
    text = accuracy.report(accuracy.load_rows())
    lines = text.splitlines()
    assert lines[0].startswith("obs ")
    assert sum(line.startswith("obs-") for line in lines) == 9
    assert lines[-3].startswith("median |error| weights")
    assert lines[-1].startswith("median |error| KV tokens")
