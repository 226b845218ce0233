"""The loopback Hub answers the real huggingface_hub client as the Hub does (errors included)."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from .fakehub import VALID_TOKEN, FakeHub


def test_model_info_reports_the_commit_and_files(hub: FakeHub) -> None:
    info = HfApi(endpoint=hub.url).model_info("MiniMaxAI/MiniMax-M2")
    assert info.sha == hub.repos["MiniMaxAI/MiniMax-M2"].commit
    assert {s.rfilename for s in info.siblings or []} == {
        "config.json",
        "model.safetensors.index.json",
    }


def test_resolve_downloads_into_the_cache_under_the_commit(hub: FakeHub, tmp_path: Path) -> None:
    path = hf_hub_download(
        "MiniMaxAI/MiniMax-M2", "config.json", endpoint=hub.url, cache_dir=tmp_path, token=False
    )
    assert Path(path).parent.name == hub.repos["MiniMaxAI/MiniMax-M2"].commit


@pytest.mark.parametrize(
    ("repo_id", "filename", "revision", "token", "error"),
    [
        ("google/gemma-3-27b-it", "config.json", None, False, GatedRepoError),
        ("nobody/nothing", "config.json", None, False, RepositoryNotFoundError),
        ("MiniMaxAI/MiniMax-M2", "config.json", "no-such-tag", False, RevisionNotFoundError),
        ("MiniMaxAI/MiniMax-M2", "tokenizer.model", None, False, EntryNotFoundError),
    ],
)
def test_errors_carry_the_hub_error_codes(
    hub: FakeHub,
    tmp_path: Path,
    repo_id: str,
    filename: str,
    revision: str | None,
    token: bool,
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        hf_hub_download(
            repo_id, filename, revision=revision, endpoint=hub.url, cache_dir=tmp_path, token=token
        )


def test_a_token_opens_a_gated_repo(hub: FakeHub, tmp_path: Path) -> None:
    path = hf_hub_download(
        "google/gemma-3-27b-it", "config.json", endpoint=hub.url, cache_dir=tmp_path,
        token=VALID_TOKEN,
    )  # fmt: skip
    assert Path(path).is_file()


def test_safetensors_metadata_comes_from_range_requests(hub: FakeHub) -> None:
    before = len(list(hub.requests()))
    metadata = HfApi(endpoint=hub.url).get_safetensors_metadata("fixtures/Qwen3-0.6B-single-file")
    assert set(metadata.parameter_count) == {"BF16"}
    gets = [entry for entry in list(hub.requests())[before:] if entry.method == "GET"]
    assert gets and all(entry.range is not None for entry in gets)
