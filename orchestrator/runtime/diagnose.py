"""Why an engine failed to start, in one line, and (for memory) the re-plan the caller found.

The log lines that name each cause are data with their sources: `profiles/engines/failures.yaml`
(vLLM, SGLang, PyTorch, NCCL/Gloo, the CUDA driver, the Hugging Face Hub, ports), most
specific first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from pydantic import Field

from orchestrator.base import Strict
from orchestrator.errors import RuntimeFailure

if TYPE_CHECKING:
    from collections.abc import Callable

    from orchestrator.plan import Plan
    from orchestrator.runtime.supervisor import ServiceGaveUp


@dataclass(frozen=True)
class Cause:
    key: str
    pattern: re.Pattern[str]
    cause: str
    fix: str
    memory: bool = False
    source: str = ""
    # When set, the cause applies only if some line of the log matches it too (the same
    # message can need another fix from another build of the engine).
    context: re.Pattern[str] | None = None


def _p(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


class FailureSignature(Strict):
    key: str
    pattern: str
    cause: str
    fix: str
    memory: bool = False
    context: str | None = None
    source: str = Field(min_length=1)


class FailureFile(Strict):
    failures: list[FailureSignature]


@cache
def causes() -> tuple[Cause, ...]:
    """The failure causes of `profiles/engines/failures.yaml`, in order (read once)."""
    from orchestrator.profiles import load_profile, read_yaml
    from orchestrator.resources import profiles_dir

    path = profiles_dir() / "engines" / "failures.yaml"
    loaded: FailureFile = load_profile(path, read_yaml(path), FailureFile)
    return tuple(
        Cause(
            item.key,
            _p(item.pattern),
            item.cause,
            item.fix,
            item.memory,
            item.source,
            _p(item.context) if item.context else None,
        )
        for item in loaded.failures
    )


@dataclass(frozen=True)
class Replan:
    plan: Plan
    knobs: str  # e.g. "--context 32768 (was 131072)"


@dataclass(frozen=True)
class Explanation:
    service: str
    cause: Cause
    evidence: str
    replan: Replan | None = None

    def line(self) -> str:
        text = f"cause: {self.cause.cause}; fix: {self.cause.fix}"
        if self.replan is not None:
            text += f"; re-plan: {self.replan.knobs} (`deploy up ... --replan` applies it)"
        return text

    def as_error(self, original: ServiceGaveUp) -> RuntimeFailure:
        hint = self.cause.fix
        if self.replan is not None:
            hint = f"rerun with {self.replan.knobs}, or add --replan"
        return RuntimeFailure(f"{self.service} did not start: {self.cause.cause}", hint)


def classify(lines: list[str]) -> tuple[Cause, str] | None:
    """The first cause, in order of specificity, that a log line shows, and that line."""
    for cause in causes():
        if cause.context is not None and not any(cause.context.search(x) for x in lines):
            continue
        for line in lines:
            if cause.pattern.search(line):
                return cause, line.strip()[:300]
    return None


def explain_failure(
    error: ServiceGaveUp, replan_for: Callable[[str, list[str]], Replan | None] | None = None
) -> Explanation | None:
    """One line naming the cause of a failed start and, for memory, the re-plan that
    `replan_for(cause key, log lines)` offers (the caller plans; this module never does)."""
    found = classify(error.log_tail)
    if found is None:
        return None
    cause, evidence = found
    wanted = replan_for is not None and cause.memory
    return Explanation(
        service=error.service,
        cause=cause,
        evidence=evidence,
        replan=replan_for(cause.key, error.log_tail) if wanted and replan_for else None,
    )
