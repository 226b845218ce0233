"""Where calibrations live: `calibration.json` in the user's state directory.

`$DEPLOY_CALIBRATION` names the file outright; otherwise it is
`$XDG_STATE_HOME/deploy/calibration.json` (`~/.local/state/deploy/...`), beside the
deployments' state. Plans read it only when it exists (one `stat` otherwise), once per
process. Writes go to a temporary file in the same directory, are flushed to disk and renamed
over the old file, so a crash leaves the old calibration or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError
from orchestrator.files import write_atomically
from orchestrator.planning.calibration import FACTOR_MAX, FACTOR_MIN, Calibration

SCHEMA_VERSION = 1
FILE_NAME = "calibration.json"
MAX_BYTES = 4 * 2**20  # a calibration file is a few KiB; anything larger is not one
MAX_RUNS = 1000


def calibration_path() -> Path:
    explicit = os.environ.get("DEPLOY_CALIBRATION")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "deploy" / FILE_NAME


def read_document(path: Path | None = None) -> dict[str, Any]:
    """The stored document ({"schema_version", "runs": [...]}); empty when there is none."""
    path = path or calibration_path()
    try:
        if path.stat().st_size > MAX_BYTES:
            raise InputError(f"{path}: larger than a calibration file can be", "remove it")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"schema_version": SCHEMA_VERSION, "runs": []}
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {path}: {error}", "fix or remove that file") from error
    except json.JSONDecodeError as error:
        raise InputError(
            f"{path}: invalid JSON at line {error.lineno} ({error.msg})",
            "remove it and run `deploy calibrate` again",
        ) from error
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise InputError(
            f"{path}: not a calibration file of this deploy (schema_version {SCHEMA_VERSION})",
            "remove it and run `deploy calibrate` again",
        )
    runs = data.get("runs")
    if not isinstance(runs, list):
        raise InputError(f"{path}: field 'runs' must be a list", "remove it and recalibrate")
    return data


def write_document(data: dict[str, Any], path: Path | None = None) -> Path:
    """Replace the calibration file atomically."""
    path = path or calibration_path()
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    try:
        write_atomically(path, text, durable=True)
    except OSError as error:
        raise InputError(
            f"cannot write {path}: {error.strerror}", "choose a writable DEPLOY_CALIBRATION"
        ) from error
    load_calibrations.cache_clear()
    return path


@cache
def load_calibrations() -> tuple[Calibration, ...]:
    """Every stored calibration (the factors recomputed from the stored runs)."""
    path = calibration_path()
    if not path.is_file():
        return ()
    from orchestrator.planning.calibration.learn import factors_from_runs

    return factors_from_runs(read_document(path)["runs"])


def clamp(value: float) -> float:
    return min(FACTOR_MAX, max(FACTOR_MIN, value))
