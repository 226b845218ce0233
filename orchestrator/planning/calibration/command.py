"""`deploy calibrate`: file bench results, recompute the factors, report them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError
from orchestrator.planning.calibration import Calibration
from orchestrator.planning.calibration.learn import factors_from_runs, run_from_result
from orchestrator.planning.calibration.store import (
    MAX_RUNS,
    calibration_path,
    read_document,
    write_document,
)

MAX_RESULT_BYTES = 256 * 2**20


def _result_file(path: Path) -> Path:
    """A result.json, or the `--out` directory holding one."""
    candidate = path / "result.json" if path.is_dir() else path
    if not candidate.is_file():
        raise InputError(
            f"{path}: no bench result there", "pass a result.json or a `deploy bench --out` dir"
        )
    return candidate


def _read_result(path: Path) -> dict[str, Any]:
    file = _result_file(path)
    try:
        if file.stat().st_size > MAX_RESULT_BYTES:
            raise InputError(f"{file}: too large for a bench result")
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"cannot read {file}: {error.strerror}") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(
            f"{file}: not JSON ({error})", "pass a `deploy bench` result.json"
        ) from error
    if not isinstance(data, dict):
        raise InputError(f"{file}: not a `deploy bench` result")
    return data


def calibrate(results: list[Path], *, reset: bool = False) -> tuple[Path, list[Calibration]]:
    """File the runs of `results` (replacing a run filed before), store, return the factors."""
    path = calibration_path()
    document: dict[str, Any] = {"schema_version": 1, "runs": []} if reset else read_document(path)
    runs: dict[str, dict[str, Any]] = {
        str(run.get("id")): run for run in document["runs"] if isinstance(run, dict)
    }
    touched: set[tuple[str, str, str]] = set()
    for result in results:
        run = run_from_result(_read_result(result), str(result))
        runs[run["id"]] = run
        touched.add((run["gpu"], run["engine"], run["engine_version"]))
    if len(runs) > MAX_RUNS:
        raise InputError(
            f"more than {MAX_RUNS} calibration runs", "start over with `deploy calibrate --reset`"
        )
    document["runs"] = sorted(runs.values(), key=lambda run: (run.get("date") or "", run["id"]))
    written = write_document(document, path) if results or reset else path
    factors = [
        entry
        for entry in factors_from_runs(document["runs"])
        if not touched or (entry.gpu, entry.engine, entry.engine_version) in touched
    ]
    return written, factors


def report(path: Path, factors: list[Calibration]) -> str:
    if not factors:
        return f"no calibration in {path}; run `deploy calibrate RESULT...` on bench results"
    lines = [f"calibration: {path}"]
    for entry in factors:
        lines.append(
            f"  {entry.gpu}, {entry.engine} {entry.engine_version}: decode x{entry.decode:.2f}, "
            f"prefill x{entry.prefill:.2f}, communication x{entry.communication:.2f} "
            f"({entry.runs} run(s), {entry.levels} level(s), newest {entry.learned_on})"
        )
    lines.append("plans on these GPUs and engine versions now use and cite these factors")
    return "\n".join(lines)


def as_json(path: Path, factors: list[Calibration]) -> str:
    import dataclasses

    return json.dumps(
        {"path": str(path), "calibrations": [dataclasses.asdict(entry) for entry in factors]},
        indent=2,
    )
