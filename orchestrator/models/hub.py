"""Metadata of a Hugging Face Hub repository, through the official `huggingface_hub` client.

Imported only for a model that is neither a local directory nor in the catalog, so catalog
plans never load the library. The client does what users already configure: `HF_ENDPOINT`
(mirrors), `HF_TOKEN` or the token `hf auth login` saved, `HF_HUB_OFFLINE`, `HF_HOME` / the
shared cache. Only metadata is fetched, never weights: `config.json`,
`model.safetensors.index.json`, `hf_quant_config.json`, and for a single-file checkpoint the
safetensors header (HTTP range requests, `HfApi.get_safetensors_metadata`). The files land in
the HF cache, so a model fetched once plans offline afterwards; the header's per-dtype counts,
which the library does not cache, are kept beside deploy's own cache, keyed by commit. Where
the client would only read its cache back, `hub_cache` reads it without loading the client.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import CatalogError, InputError
from orchestrator.models import hub_cache
from orchestrator.models.hf_config import (
    CONFIG,
    HF_QUANT,
    INDEX,
    CheckpointFiles,
    Identity,
    profile_from_files,
    read_json,
)
from orchestrator.profile_cache import cache_dir
from orchestrator.schema import ModelProfile

LOCAL_HINT = "or pass a local directory holding config.json"


class HubError(InputError):
    """The Hub cannot give a model's metadata (gated, missing, offline, unreachable)."""


def _close_hint(repo_id: str) -> str:
    from orchestrator.models.catalog import LIST_HINT, close_names

    names = close_names(repo_id)
    return f"did you mean {', '.join(names)}? {LIST_HINT}" if names else LIST_HINT


def _progress(repo_id: str, revision: str | None, filename: str) -> None:
    at = f"@{revision}" if revision else ""
    sys.stderr.write(f"fetching {repo_id}{at} {filename} from {hub_cache.endpoint()}\n")
    sys.stderr.flush()


def _cache_state(repo_id: str, filename: str, revision: str | None) -> str:
    """ "cached", "absent" (the Hub said 404 before and the cache noted it) or "unknown"."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.file_download import _CACHED_NO_EXIST

    found = try_to_load_from_cache(repo_id, filename, revision=revision)
    if isinstance(found, str):
        return "cached"
    return "absent" if found is _CACHED_NO_EXIST else "unknown"


def _probe(repo_id: str, filename: str, revision: str | None) -> None:
    """One HEAD without the client's retries, so an unreachable Hub fails in a second, not
    after its ~20 s of back-off; HTTP errors surface as the client's typed errors."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    try:
        get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision))
    except (HfHubHTTPError, EntryNotFoundError):
        raise  # the Hub answered: gated, missing repo, revision or file
    except Exception as error:
        at = f" at revision {revision}" if revision else ""
        raise HubError(
            f"cannot reach the Hugging Face Hub at {hub_cache.endpoint()} for {repo_id}{at} "
            f"({type(error).__name__}: {error})",
            f"check the network or HF_ENDPOINT, set HF_HUB_OFFLINE=1 to use the cache, "
            f"{LOCAL_HINT}",
        ) from error


def _download(repo_id: str, filename: str, revision: str | None, *, required: bool) -> Path | None:
    """One metadata file from the cache or the Hub; None for an optional file that is absent."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        # Inside the try: the client validates the repo id here first (HFValidationError).
        state = _cache_state(repo_id, filename, revision)
        if state == "absent" and not required:
            return None
        if state != "cached" and not hub_cache.offline():
            _progress(repo_id, revision, filename)
            if required:
                _probe(repo_id, filename, revision)
        return Path(hf_hub_download(repo_id, filename, revision=revision))
    except GatedRepoError as error:
        raise HubError(
            f"{repo_id} is gated: accept its license at {hub_cache.endpoint()}/{repo_id}",
            "then export HF_TOKEN=<a token of that account> (or run `hf auth login`)",
        ) from error
    except RevisionNotFoundError as error:
        raise HubError(
            f"revision {revision!r} of {repo_id} not found on the Hub",
            "pass a branch, tag or commit of that repo with --revision",
        ) from error
    except RepositoryNotFoundError as error:
        raise HubError(
            f"model {repo_id!r} not found on the Hub ({hub_cache.endpoint()})",
            f"{_close_hint(repo_id)}; a private repo needs HF_TOKEN",
        ) from error
    except LocalEntryNotFoundError as error:
        if not required:
            return None
        at = f" at revision {revision}" if revision else ""
        if hub_cache.offline():
            raise HubError(
                f"{repo_id}{at} is not in the Hugging Face cache and HF_HUB_OFFLINE is set",
                f"unset HF_HUB_OFFLINE to fetch it once, {LOCAL_HINT}",
            ) from error
        raise HubError(
            f"cannot reach the Hugging Face Hub at {hub_cache.endpoint()} for {repo_id}{at}, "
            "and it is not in the cache",
            f"check the network or HF_ENDPOINT, {LOCAL_HINT}",
        ) from error
    except EntryNotFoundError as error:
        if not required:
            return None
        raise HubError(
            f"{repo_id} has no {filename}",
            f"is it a transformers model repo? {LOCAL_HINT}",
        ) from error
    except HFValidationError as error:
        raise HubError(
            f"{repo_id!r} is not a valid Hugging Face repo id", "write it as owner/name"
        ) from error
    except OSError as error:
        raise HubError(
            f"cannot reach the Hugging Face Hub at {hub_cache.endpoint()} for {repo_id} ({error})",
            f"check the network or HF_ENDPOINT, set HF_HUB_OFFLINE=1 to use the cache, "
            f"{LOCAL_HINT}",
        ) from error


def _header_cache(repo_id: str, commit: str) -> Path:
    return cache_dir() / "hub-headers" / repo_id.replace("/", "--") / f"{commit}.json"


def _cached_single_file_params(repo_id: str, commit: str) -> dict[str, int] | None:
    try:
        data = json.loads(_header_cache(repo_id, commit).read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return {str(k): int(v) for k, v in data.items()}
    except (OSError, ValueError, TypeError):
        pass
    return None


def _single_file_params(repo_id: str, commit: str) -> dict[str, int] | None:
    """Parameters per dtype of a single-file checkpoint, from its header (cached by commit)."""
    cached = _cached_single_file_params(repo_id, commit)
    if cached is not None or hub_cache.offline():
        return cached
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, NotASafetensorsRepoError

    _progress(repo_id, commit[:12], "safetensors header")
    try:
        metadata = HfApi().get_safetensors_metadata(repo_id, revision=commit)
    except (NotASafetensorsRepoError, HfHubHTTPError, OSError):
        return None  # sizes then come from the config's shapes alone
    counts = {str(dtype): int(count) for dtype, count in metadata.parameter_count.items()}
    _write_atomically(_header_cache(repo_id, commit), json.dumps(counts))
    return counts


def _write_atomically(path: Path, text: str) -> None:
    from orchestrator.files import write_atomically

    # A read-only cache only costs the range request next time.
    with contextlib.suppress(OSError):
        write_atomically(path, text)


def _object(path: Path) -> Mapping[str, Any]:
    value = read_json(path)
    if not isinstance(value, dict):
        raise CatalogError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def hub_model(repo_id: str, revision: str | None = None) -> ModelProfile:
    """The profile of `repo_id` at `revision` (default branch when None), pinned to its commit."""
    files, commit = _from_cache(repo_id, revision) or _from_hub(repo_id, revision)
    identity = Identity(
        name=repo_id.rsplit("/", 1)[-1].lower(),
        hf_id=repo_id,
        source=f"{hub_cache.endpoint()}/{repo_id}/blob/{commit}/{CONFIG}",
        origin="hub",
        revision=commit,
    )
    return profile_from_files(files, identity)


def _checkpoint_files(
    repo_id: str,
    config: Path,
    index: Path | None,
    hf_quant: Path | None,
    single_file_params: dict[str, int] | None,
) -> CheckpointFiles:
    return CheckpointFiles(
        config=_object(config),
        config_path=f"{repo_id}/{CONFIG}",
        index=_object(index) if index is not None else None,
        index_path=f"{repo_id}/{INDEX}",
        hf_quant=_object(hf_quant) if hf_quant is not None else None,
        single_file_params=single_file_params,
    )


def _from_cache(repo_id: str, revision: str | None) -> tuple[CheckpointFiles, str] | None:
    """The files the client would return from its cache without fetching, else None."""
    commit = hub_cache.cached_commit(repo_id, revision)
    if commit is None:
        return None
    config = hub_cache.cached_file(repo_id, commit, CONFIG)
    if not isinstance(config, Path):
        return None  # the client fetches it, or says why it cannot
    offline = hub_cache.offline()
    optional: dict[str, Path | None] = {}
    for filename in (INDEX, HF_QUANT):
        cached = hub_cache.cached_file(repo_id, commit, filename)
        if cached is None and not offline:
            return None  # only the Hub knows whether the file exists: the client asks it
        optional[filename] = cached if isinstance(cached, Path) else None
    single = None
    if optional[INDEX] is None:
        single = _cached_single_file_params(repo_id, commit)
        if single is None and not offline:
            return None
    if not hub_cache.still_current(repo_id, revision, commit):
        return None
    files = _checkpoint_files(repo_id, config, optional[INDEX], optional[HF_QUANT], single)
    return files, commit


def _from_hub(repo_id: str, revision: str | None) -> tuple[CheckpointFiles, str]:
    """The files through the client: fetched once, then from its cache."""
    config_path = _download(repo_id, CONFIG, revision, required=True)
    assert config_path is not None
    # The cache keeps files under snapshots/<commit>/: the resolved revision.
    commit = config_path.parent.name
    index_path = _download(repo_id, INDEX, commit, required=False)
    quant_path = _download(repo_id, HF_QUANT, commit, required=False)
    single = _single_file_params(repo_id, commit) if index_path is None else None
    files = _checkpoint_files(repo_id, config_path, index_path, quant_path, single)
    return files, commit
