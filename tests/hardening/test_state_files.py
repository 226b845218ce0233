"""State files are read one by one: a corrupt one is skipped and described, not fatal."""

from __future__ import annotations

from pathlib import Path

from orchestrator.state import DeploymentState, NodeInfo, StateStore


def test_all_skips_a_corrupt_state_file_and_says_which(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(DeploymentState(name="good", specs=[], nodes=[NodeInfo(name="n0")]))
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "wrong.json").write_text('{"name": "wrong"}', encoding="utf-8")
    assert [state.name for state in store.all()] == ["good"]
    assert len(store.problems) == 2
    assert store.problems[0].startswith(f"skipped state file {tmp_path / 'bad.json'} is not valid")
    assert store.problems[1].startswith(
        f"skipped state file {tmp_path / 'wrong.json'} is not valid"
    )
