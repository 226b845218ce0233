"""The state directory: atomic JSON files, default location, `find_endpoint`."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import InputError
from orchestrator.spec import Probe, ServiceSpec
from orchestrator.state import (
    ContainerRecord,
    DeploymentState,
    NodeInfo,
    StateStore,
    default_state_dir,
    find_endpoint,
)


def a_state(name: str = "qwen", url: str | None = "http://127.0.0.1:8000") -> DeploymentState:
    spec = ServiceSpec(
        name="serve-0",
        node="n0",
        role="serve",
        image="img",
        command=["x"],
        secret_env=["HF_TOKEN"],
        probe=Probe(kind="http", path="/health", port=8000, start_period_s=5),
    )
    return DeploymentState(
        name=name,
        specs=[spec],
        nodes=[NodeInfo(name="n0")],
        containers={
            "serve-0": ContainerRecord(
                service="serve-0",
                node="n0",
                endpoint="unix:///var/run/docker.sock",
                id="abc",
                spec_hash=spec.spec_hash(),
                started_at=1.0,
            )
        },
        restarts={"serve-0": 2},
        endpoint_url=url,
    )


def test_save_load_round_trip_and_no_temporary_files_left(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s")
    path = store.save(a_state())
    assert path == tmp_path / "s" / "qwen.json"
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["qwen.json"]
    loaded = store.load("qwen")
    assert loaded is not None
    assert loaded.restarts == {"serve-0": 2}
    assert loaded.containers["serve-0"].id == "abc"
    assert loaded.specs[0].secret_env == ["HF_TOKEN"]
    assert store.names() == ["qwen"]
    store.save(a_state("other"))
    assert [s.name for s in store.all()] == ["other", "qwen"]
    assert store.delete("qwen") is True
    assert store.delete("qwen") is False
    assert store.load("qwen") is None


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(a_state(url="http://first"))
    broken = a_state(url="http://second")
    broken.plan = {"unserialisable": object()}  # type: ignore[dict-item]
    with pytest.raises(Exception):  # noqa: B017 - whichever error pydantic raises
        store.save(broken)
    loaded = store.load("qwen")
    assert loaded is not None and loaded.endpoint_url == "http://first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qwen.json"]


def test_default_dir_follows_xdg_state_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "deploy"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_dir() == tmp_path / "home" / ".local" / "state" / "deploy"


def test_find_endpoint(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(a_state())
    store.save(a_state("loading", url=None))
    assert find_endpoint("qwen", tmp_path) == "http://127.0.0.1:8000"
    with pytest.raises(InputError, match=r"no deployment named 'nope'.*known: loading, qwen"):
        find_endpoint("nope", tmp_path)
    with pytest.raises(InputError, match="has no HTTP endpoint yet"):
        find_endpoint("loading", tmp_path)


def test_bad_names_and_corrupt_files_are_input_errors(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    with pytest.raises(InputError, match="is not a DNS label"):
        store.path("../etc/passwd")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(
        InputError, match=r"state file .*bad.json is not valid.*deploy down --name bad"
    ):
        store.load("bad")
    (tmp_path / "unreadable.json").mkdir()
    with pytest.raises(
        InputError, match=r"cannot read state file .*unreadable.json \(Is a directory\)"
    ):
        store.load("unreadable")
