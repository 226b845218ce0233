"""The per-user cache of parsed profile YAML: fresh data is reused, anything else is rebuilt."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator import profile_cache
from orchestrator.errors import CatalogError
from orchestrator.hardware import gpus as catalog
from orchestrator.hardware.gpus import load_gpus, load_gpus_from
from orchestrator.models import catalog as model_catalog
from orchestrator.models.catalog import load_models, load_models_from
from orchestrator.profile_cache import cache_dir, cache_file, cached_documents
from orchestrator.profiles import read_yaml
from orchestrator.resources import profiles_dir

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home / "deploy"


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    directory = tmp_path / "models"
    directory.mkdir()
    for name in ("qwen3-32b", "llama-3.1-8b"):
        shutil.copy(profiles_dir() / "models" / f"{name}.yaml", directory / f"{name}.yaml")
    return directory


class CountingParser:
    """The real YAML reader, counting the files it parses."""

    def __init__(self) -> None:
        self.parsed: list[str] = []

    def __call__(self, path: Path) -> Any:
        self.parsed.append(path.name)
        return read_yaml(path)


def _uncached(directory: Path) -> list[tuple[Path, Any]]:
    return [(path, read_yaml(path)) for path in sorted(directory.glob("*.yaml"))]


def _bump_mtime(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_first_run_parses_and_writes_second_run_reads(user_cache: Path, profiles: Path) -> None:
    parser = CountingParser()
    first = cached_documents(profiles, parser)
    assert parser.parsed == ["llama-3.1-8b.yaml", "qwen3-32b.yaml"]
    assert first == _uncached(profiles)
    assert cache_file(profiles).parent == user_cache
    assert cache_file(profiles).is_file()

    again = CountingParser()
    assert cached_documents(profiles, again) == first
    assert again.parsed == []


def test_edited_profile_is_parsed_again(user_cache: Path, profiles: Path) -> None:
    cached_documents(profiles, CountingParser())
    path = profiles / "qwen3-32b.yaml"
    path.write_text(path.read_text().replace("qwen3-32b", "qwen3-32b-edited", 1))
    parser = CountingParser()
    documents = cached_documents(profiles, parser)
    assert parser.parsed == ["llama-3.1-8b.yaml", "qwen3-32b.yaml"]
    assert documents == _uncached(profiles)
    assert dict(documents)[path]["name"] == "qwen3-32b-edited"


def test_same_size_edit_is_caught_by_mtime(user_cache: Path, profiles: Path) -> None:
    cached_documents(profiles, CountingParser())
    path = profiles / "llama-3.1-8b.yaml"
    text = path.read_text()
    assert "llama-3.1-8b" in text
    path.write_text(text.replace("llama-3.1-8b", "llama-3.1-9b", 1))  # same length
    _bump_mtime(path)  # a coarse clock could leave the time unchanged
    parser = CountingParser()
    documents = cached_documents(profiles, parser)
    assert parser.parsed == ["llama-3.1-8b.yaml", "qwen3-32b.yaml"]
    assert dict(documents)[path]["name"] == "llama-3.1-9b"


@pytest.mark.parametrize("change", ["add", "remove", "rename"])
def test_added_removed_or_renamed_file_rebuilds(
    user_cache: Path, profiles: Path, change: str
) -> None:
    cached_documents(profiles, CountingParser())
    if change == "add":
        shutil.copy(profiles_dir() / "models" / "qwen3-8b.yaml", profiles / "qwen3-8b.yaml")
    elif change == "remove":
        (profiles / "qwen3-32b.yaml").unlink()
    else:
        (profiles / "qwen3-32b.yaml").rename(profiles / "z-qwen3-32b.yaml")
    parser = CountingParser()
    documents = cached_documents(profiles, parser)
    assert documents == _uncached(profiles)
    assert parser.parsed == [path.name for path, _ in documents]


def test_other_package_version_rebuilds(
    user_cache: Path, profiles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached_documents(profiles, CountingParser())
    monkeypatch.setattr(profile_cache, "__version__", "999.0.0")
    parser = CountingParser()
    assert cached_documents(profiles, parser) == _uncached(profiles)
    assert len(parser.parsed) == 2


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda text: "",
        lambda text: "\x00\xff not json",
        lambda text: text[: len(text) // 2],
        lambda text: "[]",
        lambda text: json.dumps({"key": json.loads(text)["key"], "documents": "oops"}),
        lambda text: json.dumps({"key": json.loads(text)["key"], "documents": [{}]}),
    ],
    ids=["empty", "garbage", "truncated", "wrong-shape", "wrong-type", "wrong-count"],
)
def test_corrupt_cache_is_ignored_and_rewritten(
    user_cache: Path, profiles: Path, corrupt: Callable[[str], str]
) -> None:
    expected = cached_documents(profiles, CountingParser())
    file = cache_file(profiles)
    file.write_bytes(corrupt(file.read_text()).encode("utf-8", "surrogateescape"))
    parser = CountingParser()
    assert cached_documents(profiles, parser) == expected
    assert len(parser.parsed) == 2
    reread = CountingParser()
    assert cached_documents(profiles, reread) == expected
    assert reread.parsed == []


def test_unwritable_cache_dir_still_loads(
    tmp_path: Path, profiles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory would go\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    for _ in range(2):
        parser = CountingParser()
        assert cached_documents(profiles, parser) == _uncached(profiles)
        assert len(parser.parsed) == 2
    assert blocker.read_text() == "a file where the cache directory would go\n"


@pytest.mark.parametrize(
    "text",
    ["released: 2024-05-01\n", "1: integer key\n", "ratio: .nan\n"],
    ids=["date", "integer-key", "nan"],
)
def test_data_json_cannot_hold_is_not_cached(user_cache: Path, tmp_path: Path, text: str) -> None:
    directory = tmp_path / "odd"
    directory.mkdir()
    (directory / "a.yaml").write_text(text)
    documents = cached_documents(directory, CountingParser())
    assert documents == _uncached(directory)
    assert not cache_file(directory).exists()


def test_yaml_error_propagates_and_nothing_is_cached(user_cache: Path, profiles: Path) -> None:
    (profiles / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(CatalogError, match="invalid YAML"):
        cached_documents(profiles, CountingParser())
    assert not cache_file(profiles).exists()


def test_validation_errors_are_the_same_from_the_cache(user_cache: Path, profiles: Path) -> None:
    path = profiles / "qwen3-32b.yaml"
    path.write_text(path.read_text() + "num_layer: 64\n")
    with pytest.raises(CatalogError) as uncached:
        load_models_from(profiles)
    for _ in range(2):  # the first call writes the cache, the second reads it
        with pytest.raises(CatalogError) as cached:
            load_models_from(profiles, cached_documents(profiles, CountingParser()))
        assert str(cached.value) == str(uncached.value)
    assert cache_file(profiles).is_file()


def test_shipped_catalog_through_the_cache_equals_a_fresh_parse(user_cache: Path) -> None:
    models, gpus = profiles_dir() / "models", profiles_dir() / "gpus"
    model_catalog.load_models.cache_clear()
    catalog.load_gpus.cache_clear()
    try:
        assert load_models() == load_models_from(models)
        assert load_gpus() == load_gpus_from(gpus)
        assert cache_file(models).is_file() and cache_file(gpus).is_file()
        model_catalog.load_models.cache_clear()
        catalog.load_gpus.cache_clear()
        assert load_models() == load_models_from(models)  # now read from the cache
        assert load_gpus() == load_gpus_from(gpus)
    finally:
        model_catalog.load_models.cache_clear()
        catalog.load_gpus.cache_clear()


def test_cache_dir_follows_xdg_and_falls_back_to_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/srv/cache")
    assert cache_dir() == Path("/srv/cache/deploy")
    monkeypatch.setenv("HOME", "/home/ops")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # not absolute: ignored (XDG spec)
    assert cache_dir() == Path("/home/ops/.cache/deploy")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path("/home/ops/.cache/deploy")


def test_deploy_plan_output_is_the_same_cold_warm_and_corrupt(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "orchestrator", "plan", "qwen3-32b", "--gpus", "2xH100"]

    def run() -> str:
        result = subprocess.run(
            argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        return result.stdout

    cold = run()
    written = sorted((tmp_path / "cache" / "deploy").glob("profiles-*.json"))
    assert [path.name.split("-")[1] for path in written] == ["gpus", "models", "releases"]
    assert run() == cold
    for path in written:
        path.write_text("{ corrupt")
    assert run() == cold
    assert all(json.loads(path.read_text())["documents"] for path in written)
