"""Fixtures shared by every test area."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def cli_runner():  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    return CliRunner()
