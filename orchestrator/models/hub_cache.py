"""A Hub model already in the Hugging Face cache, read without importing `huggingface_hub`.

The client takes longer to import (~250 ms, its HTTP stack included) than `deploy plan` takes
to plan, and for a model fetched before it only reads what it wrote. This module reads the
cache by its documented layout (`models--{owner}--{name}/refs/{revision}` holds a commit,
`snapshots/{commit}/{file}` the file, `.no_exist/{commit}/{file}` a file the Hub said is
missing) and answers only when the client would not have asked the Hub anything else:

* offline (`HF_HUB_OFFLINE` or `TRANSFORMERS_OFFLINE`): the cached ref is the revision;
* a revision that is a commit hash: a snapshot never changes;
* a branch or tag: one `HEAD` of `config.json`, the request the client makes itself, answers
  200 with the commit the cache's ref names, or cannot connect at all (the client then serves
  its cached ref as well). A ref the Hub moved, any other answer, a TLS handshake that
  fails, a proxy to honour or a staging endpoint go to the client, which fetches, updates
  the cache and raises its typed errors.

Nothing here writes the cache; every miss returns None and the caller asks the client.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

DEFAULT_ENDPOINT: Final = "https://huggingface.co"
STAGING_ENDPOINT: Final = "https://hub-ci.huggingface.co"
DEFAULT_REVISION: Final = "main"
# `huggingface_hub.constants.DEFAULT_ETAG_TIMEOUT`: the client's own wait for this HEAD.
DEFAULT_HEAD_TIMEOUT_S: Final = 10
MAX_HEAD_TIMEOUT_S: Final = 300
TRUE_VALUES: Final = frozenset({"1", "ON", "YES", "TRUE"})

# The client's repo-id rules (`validate_repo_id`): one owner, one name, no `--` or `..`.
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


class Absent:
    """The Hub said this file does not exist at that commit, and the cache noted it."""


ABSENT: Final = Absent()


def _is_true(name: str) -> bool:
    return os.environ.get(name, "").upper() in TRUE_VALUES


def _staging() -> bool:
    return _is_true("HUGGINGFACE_CO_STAGING")


def endpoint() -> str:
    """The Hub the client talks to (`HF_ENDPOINT`, as `huggingface_hub.constants` reads it)."""
    if _staging():
        return STAGING_ENDPOINT
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def offline() -> bool:
    """`HF_HUB_OFFLINE`, else `TRANSFORMERS_OFFLINE`, as `huggingface_hub.constants` reads them."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in TRUE_VALUES


def cache_root() -> Path:
    """`HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, as the client reads them."""
    default_home = os.path.join(os.path.expanduser("~"), ".cache")
    home = os.environ.get(
        "HF_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", default_home), "huggingface")
    )
    home = os.path.expandvars(os.path.expanduser(home))
    legacy = os.environ.get("HUGGINGFACE_HUB_CACHE", os.path.join(home, "hub"))
    return Path(os.path.expandvars(os.path.expanduser(os.environ.get("HF_HUB_CACHE", legacy))))


def _safe_revision(revision: str) -> bool:
    parts = revision.split("/")
    return bool(revision) and not revision.startswith("/") and ".." not in parts and "" not in parts


def _repo_dir(repo_id: str) -> Path | None:
    if not _REPO_ID.fullmatch(repo_id) or "--" in repo_id or ".." in repo_id:
        return None
    return cache_root() / ("models--" + repo_id.replace("/", "--"))


def cached_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit the cache holds for `revision` (the default branch when None), or None."""
    repo = _repo_dir(repo_id)
    revision = revision or DEFAULT_REVISION
    if repo is None or not _safe_revision(revision) or _staging():
        return None
    if _COMMIT.fullmatch(revision):
        return revision if (repo / "snapshots" / revision).is_dir() else None
    try:
        commit = (repo / "refs" / revision).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not _COMMIT.fullmatch(commit) or not (repo / "snapshots" / commit).is_dir():
        return None
    return commit


def still_current(repo_id: str, revision: str | None, commit: str) -> bool:
    """Whether the client would take `commit` for `revision` without fetching anything."""
    revision = revision or DEFAULT_REVISION
    if revision == commit or offline():
        return True
    return _hub_confirms(repo_id, revision, commit)


def cached_file(repo_id: str, commit: str, filename: str) -> Path | Absent | None:
    """The cached file at `commit`, ABSENT if the Hub said it is missing, None if unknown."""
    repo = _repo_dir(repo_id)
    if repo is None or not _COMMIT.fullmatch(commit):
        return None
    path = repo / "snapshots" / commit / filename
    if path.is_file():
        return path
    if (repo / ".no_exist" / commit / filename).is_file():
        return ABSENT
    return None


def _head_timeout_s() -> float:
    try:
        value = int(os.environ.get("HF_HUB_ETAG_TIMEOUT") or DEFAULT_HEAD_TIMEOUT_S)
    except ValueError:
        value = DEFAULT_HEAD_TIMEOUT_S
    return float(min(max(value, 1), MAX_HEAD_TIMEOUT_S))


def _proxied(host: str) -> bool:
    """A proxy the environment names for this host: the client honours it, http.client not."""
    from urllib.request import getproxies_environment, proxy_bypass

    proxies = {scheme for scheme, url in getproxies_environment().items() if scheme != "no" and url}
    return bool(proxies) and not proxy_bypass(host)


def _hub_confirms(repo_id: str, revision: str, commit: str) -> bool:
    """Whether the client would keep `commit` after its HEAD of config.json at `revision`:
    the Hub answers 200 naming that commit, or cannot be reached at all (the client then
    serves its cached ref too, `_get_metadata_or_catch_error`). Any other answer is the
    client's to read: a newer commit to fetch, a missing revision, a token it would send."""
    from urllib.parse import quote, urlsplit

    url = urlsplit(endpoint())
    if url.scheme not in ("http", "https") or not url.hostname:
        return False
    if _proxied(url.hostname) or os.environ.get("HF_OIDC_RESOURCE"):
        return False
    import http.client
    import ssl

    connection_class = (
        http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    )
    headers = {"User-Agent": "deploy", "Accept-Encoding": "identity"}
    token = (os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or "").strip()
    if token and not _is_true("HF_HUB_DISABLE_IMPLICIT_TOKEN"):
        headers["Authorization"] = f"Bearer {token}"
    path = f"{url.path}/{repo_id}/resolve/{quote(revision, safe='')}/config.json"
    connection = connection_class(url.hostname, url.port, timeout=_head_timeout_s())
    try:
        connection.request("HEAD", path, headers=headers)
        response = connection.getresponse()
        return response.status == 200 and response.getheader("X-Repo-Commit") == commit
    except (http.client.HTTPException, ssl.SSLError):
        return False  # the client's own TLS settings (a CA bundle) may succeed where these fail
    except OSError:
        return True  # unreachable, refused or timed out: the cache is what the client serves
    finally:
        connection.close()
