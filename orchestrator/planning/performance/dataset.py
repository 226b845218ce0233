"""The published dev data the model is calibrated and checked on, as the benchmarks ship it.

`benchmarks/data/` holds copies of the observation files, the layout comparisons and the
config.json of every model they name that the catalog does not carry (each with its source in
benchmarks/data/README.md). The model finder looks there first, then in the catalog.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.schema import ModelProfile

DATA = Path(__file__).resolve().parents[3] / "benchmarks" / "data"
OBSERVATION_FILES = ("perf-observations-dev.json", "perf-observations-dev2.json")
COMPARISONS = "layout-comparisons-dev.json"


def dev_observations(data: Path = DATA) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in OBSERVATION_FILES:
        out += json.loads((data / name).read_text())["observations"]
    return out


def comparisons(data: Path = DATA) -> list[dict[str, Any]]:
    return list(json.loads((data / COMPARISONS).read_text())["comparisons"])


def model_finder(data: Path = DATA) -> Callable[[str], ModelProfile]:
    from orchestrator.models.hf_config import model_from_directory
    from orchestrator.planning.performance.calibration import catalog_model

    def find(name: str) -> ModelProfile:
        directory = data / "models" / name.replace("/", "--")
        if directory.is_dir():
            return model_from_directory(directory)
        return catalog_model(name)

    return find
