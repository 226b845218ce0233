"""Helpers for the flag-schema tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from orchestrator.engines.flags import CheckedArgv, check_argv
from orchestrator.errors import FlagError


@pytest.fixture
def rejected() -> Callable[[str, str, Sequence[str]], str]:
    """Run check_argv, expect a FlagError, and return its one-line text."""

    def run(engine: str, version: str, argv: Sequence[str]) -> str:
        with pytest.raises(FlagError) as caught:
            check_argv(engine, version, list(argv))
        text = str(caught.value)
        assert "\n" not in text
        assert caught.value.exit_code == 2
        return text

    return run


@pytest.fixture
def accepted() -> Callable[[str, str, Sequence[str]], CheckedArgv]:
    def run(engine: str, version: str, argv: Sequence[str]) -> CheckedArgv:
        return check_argv(engine, version, list(argv))

    return run
