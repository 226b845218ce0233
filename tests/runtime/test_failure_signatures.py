"""Failure-log signatures are data with sources (profiles/engines/failures.yaml); the planner's
re-plan covers exactly the causes marked as memory."""

from __future__ import annotations

from orchestrator.planning.replan import MEMORY_CAUSES
from orchestrator.runtime.diagnose import causes, classify


def test_every_signature_names_its_source_and_compiles() -> None:
    found = causes()
    assert len(found) >= 10
    # A key appears twice only where a context tells the builds apart (the same vLLM message
    # needs another fix on its CPU build): all but one of its entries carry a context.
    for key in {cause.key for cause in found}:
        same = [cause for cause in found if cause.key == key]
        assert sum(cause.context is None for cause in same) <= 1, key
    assert all(cause.source.strip() and cause.pattern.pattern for cause in found)


def test_the_re_plan_covers_exactly_the_memory_causes() -> None:
    assert {cause.key for cause in causes() if cause.memory} == MEMORY_CAUSES


def test_most_specific_first() -> None:
    lines = [
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        "RuntimeError: Engine core initialization failed. NCCL error: unhandled system error",
    ]
    found = classify(lines)
    assert found is not None and found[0].key == "cuda-oom"
    assert classify(["all good"]) is None


def test_a_cause_with_a_context_applies_only_beside_it() -> None:
    import re

    from orchestrator.runtime import diagnose

    only_here = diagnose.Cause(
        "x", re.compile("boom"), "c", "f", context=re.compile("on the test build")
    )
    original = diagnose.causes
    try:
        diagnose.causes = lambda: (only_here,)  # type: ignore[assignment]
        assert diagnose.classify(["boom"]) is None
        found = diagnose.classify(["on the test build", "boom"])
        assert found is not None and found[0].key == "x"
    finally:
        diagnose.causes = original  # type: ignore[assignment]
