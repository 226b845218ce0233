"""A model fetched once plans from the Hugging Face cache without loading the Hub client, exactly
where the client itself would not fetch: offline, at a pinned commit, or after one HEAD that
finds the branch where the cache has it. Everything else still goes through the real client."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.file_download import _CACHED_NO_EXIST

from orchestrator.models import hub_cache
from orchestrator.models.hub import _from_cache

from .conftest import REPO_ROOT, Result, Runner
from .fakehub import VALID_TOKEN, FakeHub

MODEL = "MiniMaxAI/MiniMax-M2"
SINGLE_FILE = "fixtures/Qwen3-0.6B-single-file"
GPUS = ("--gpus", "4xH200")


def _plan(deploy: Runner, model: str = MODEL, *args: str, **kwargs: object) -> Result:
    result = deploy("plan", model, *args, *GPUS, "--json", **kwargs)
    assert result.returncode == 0, result.stderr
    return result


def _revision(result: Result) -> str:
    revision = json.loads(result.stdout)["model"]["revision"]
    assert isinstance(revision, str)
    return revision


def _requests_since(hub: FakeHub, before: int) -> list[tuple[str, str, int]]:
    return [(r.method, r.path, r.status) for r in list(hub.requests())[before:]]


def test_offline_the_cache_is_read_without_the_client(deploy: Runner, hub: FakeHub) -> None:
    fetched = _plan(deploy)
    assert fetched.client_imported
    before = len(list(hub.requests()))
    offline = _plan(deploy, offline=True)
    assert (offline.stdout, offline.stderr) == (fetched.stdout, "")
    assert not offline.client_imported
    assert _requests_since(hub, before) == []


def test_online_one_head_confirms_the_cached_commit(deploy: Runner, hub: FakeHub) -> None:
    fetched = _plan(deploy)
    before = len(list(hub.requests()))
    again = _plan(deploy)
    assert (again.stdout, again.stderr) == (fetched.stdout, "")
    assert not again.client_imported
    assert _requests_since(hub, before) == [("HEAD", f"/{MODEL}/resolve/main/config.json", 200)]


def test_a_pinned_commit_asks_the_hub_nothing(deploy: Runner, hub: FakeHub) -> None:
    fetched = _plan(deploy)
    before = len(list(hub.requests()))
    pinned = _plan(deploy, MODEL, "--revision", _revision(fetched))
    assert json.loads(pinned.stdout)["model"] == json.loads(fetched.stdout)["model"]
    assert not pinned.client_imported
    assert _requests_since(hub, before) == []


def test_a_single_file_checkpoint_reads_its_cached_header(deploy: Runner, hub: FakeHub) -> None:
    fetched = _plan(deploy, SINGLE_FILE)
    for offline in (False, True):
        again = _plan(deploy, SINGLE_FILE, offline=offline)
        assert (again.stdout, again.client_imported) == (fetched.stdout, False)


def test_a_branch_the_hub_moved_is_fetched_again_by_the_client(deploy: Runner) -> None:
    with FakeHub() as own:
        first = _plan(deploy, endpoint=own.url)
        repo = own.repos[MODEL]
        assert _revision(first) == repo.commit
        repo.commit = hashlib.sha1(b"a later commit").hexdigest()
        moved = _plan(deploy, endpoint=own.url)
        assert (_revision(moved), moved.client_imported) == (repo.commit, True)
        # The client moved the cache's ref; the next plan reads the new snapshot alone.
        again = _plan(deploy, endpoint=own.url)
        assert (_revision(again), again.client_imported) == (repo.commit, False)


def test_a_gated_repo_uses_the_environments_token_or_the_client(
    deploy: Runner, tmp_path: Path
) -> None:
    gated = "meta-llama/Meta-Llama-3.1-8B-Instruct"
    fetched = deploy("plan", gated, "--gpus", "1xH100", token=VALID_TOKEN)
    assert fetched.returncode == 0, fetched.stderr
    with_token = deploy("plan", gated, "--gpus", "1xH100", token=VALID_TOKEN)
    assert (with_token.stdout, with_token.client_imported) == (fetched.stdout, False)
    # The token `hf auth login` saved is the client's to read: the HEAD without it is refused,
    # and the client answers.
    (tmp_path / "hf-home" / "token").write_text(VALID_TOKEN)
    saved = deploy("plan", gated, "--gpus", "1xH100")
    assert (saved.returncode, saved.stdout, saved.client_imported) == (0, fetched.stdout, True)


def test_files_are_found_where_the_client_finds_them(
    deploy: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = _revision(_plan(deploy))
    cache = tmp_path / "hf-home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert hub_cache.cached_commit(MODEL, None) == commit
    assert hub_cache.cached_commit(MODEL, "main") == commit
    assert hub_cache.cached_commit(MODEL, commit) == commit
    assert hub_cache.cached_commit(MODEL, "v9") is None  # a ref the cache never saw
    names = (
        "config.json",
        "model.safetensors.index.json",
        "hf_quant_config.json",
        "tokenizer.json",
    )
    for name in names:
        theirs = try_to_load_from_cache(MODEL, name, cache_dir=cache, revision=commit)
        ours = hub_cache.cached_file(MODEL, commit, name)
        if isinstance(theirs, str):
            assert ours == Path(theirs), name
        elif theirs is _CACHED_NO_EXIST:
            assert ours is hub_cache.ABSENT, name
        else:
            assert ours is None, name
    # What the first fetch left: the config and index cached, the quant config noted as absent.
    assert isinstance(hub_cache.cached_file(MODEL, commit, "config.json"), Path)
    assert hub_cache.cached_file(MODEL, commit, "hf_quant_config.json") is hub_cache.ABSENT


@pytest.mark.parametrize(
    "repo_id, revision",
    [
        ("../MiniMax-M2", None),
        ("a--b/c", None),
        ("MiniMaxAI/..", None),
        (MODEL, "../../x"),
        (MODEL, "/etc/passwd"),
        (MODEL, "refs//x"),
    ],
)
def test_names_that_could_leave_the_cache_are_left_to_the_client(
    repo_id: str, revision: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert hub_cache.cached_commit(repo_id, revision) is None


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"HF_HOME": "~/hf-home"},
        {"HF_HOME": "$BASE/hf"},
        {"XDG_CACHE_HOME": "/var/cache/xdg"},
        {"HUGGINGFACE_HUB_CACHE": "/srv/legacy"},
        {"HF_HUB_CACHE": "/srv/hub", "HUGGINGFACE_HUB_CACHE": "/srv/legacy"},
        {"HF_HUB_OFFLINE": "yes"},
        {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1"},
        {"TRANSFORMERS_OFFLINE": "On"},
        {"HF_ENDPOINT": "http://mirror.internal:8080/"},
        {"HF_ENDPOINT": "http://mirror.internal:8080", "HUGGINGFACE_CO_STAGING": "1"},
    ],
)
def test_the_cache_switches_and_endpoint_are_read_as_the_client_reads_them(
    variables: dict[str, str], tmp_path: Path
) -> None:
    script = (
        "import json\n"
        "from huggingface_hub import constants\n"
        "from orchestrator.models import hub_cache\n"
        "print(json.dumps([\n"
        "    [constants.HF_HUB_CACHE, str(hub_cache.cache_root())],\n"
        "    [constants.HF_HUB_OFFLINE, hub_cache.offline()],\n"
        "    [constants.ENDPOINT, hub_cache.endpoint()],\n"
        "]))\n"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "BASE": "/b"}
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={**env, **variables},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    for theirs, ours in json.loads(completed.stdout):
        assert ours == theirs


def test_a_proxy_for_the_hub_is_left_to_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert not hub_cache._proxied("huggingface.co")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert hub_cache._proxied("huggingface.co")
    monkeypatch.setenv("NO_PROXY", "huggingface.co,127.0.0.1")
    assert not hub_cache._proxied("huggingface.co")
    assert hub_cache._proxied("mirror.internal")


def test_a_config_the_hub_said_is_missing_is_left_to_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = hashlib.sha1(b"no config").hexdigest()
    repo = tmp_path / "models--owner--no-config"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / ".no_exist" / commit).mkdir(parents=True)
    (repo / ".no_exist" / commit / "config.json").write_text("")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_cache.cached_commit("owner/no-config", None) == commit
    assert hub_cache.cached_file("owner/no-config", commit, "config.json") is hub_cache.ABSENT
    assert _from_cache("owner/no-config", None) is None


def test_a_tls_failure_is_left_to_the_client(deploy: Runner, hub: FakeHub) -> None:
    """The client's TLS settings (its CA bundle) may succeed where the standard library's do
    not, so a handshake that fails is the client's to judge; here it fails for the client as
    well (the loopback Hub speaks plain HTTP) and the client serves its cache."""
    fetched = _plan(deploy)
    https = hub.url.replace("http://", "https://", 1)
    result = _plan(deploy, endpoint=https)
    assert json.loads(result.stdout)["model"]["revision"] == _revision(fetched)
    assert result.client_imported
