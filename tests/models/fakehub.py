"""A loopback stand-in for the Hugging Face Hub that the real `huggingface_hub` client talks to.

It answers the requests the client makes, with the Hub's headers:

* `HEAD`/`GET /{repo}/resolve/{revision}/{file}`: `X-Repo-Commit`, `ETag`, `Content-Length`,
  and for LFS files (`*.safetensors`) `X-Linked-Etag` / `X-Linked-Size`; `Range` requests get
  `206 Partial Content` (the safetensors header is read that way);
* `GET /api/models/{repo}` and `/api/models/{repo}/revision/{revision}`: model info;
* errors with `X-Error-Code`: `GatedRepo` (401 without a token, 403 with a token lacking
  access), `RepoNotFound` (401), `RevisionNotFound` (404), `EntryNotFound` (404).

Repos are built from `tests/models/fixtures/<owner>--<name>/` (see its README): `config.json`,
an optional `hf_quant_config.json`, and `repo.json` saying whether the repo is gated, sharded
(an index with `total_size` and a `weight_map`, MTP tensors included or not) or a single-file
checkpoint (a real safetensors header, then weights the server never sends in full).
Every request is logged, so tests can assert that no weight bytes were downloaded.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

FIXTURES = Path(__file__).resolve().parent / "fixtures"
VALID_TOKEN = "hf_fake_token_with_access"
NO_ACCESS_TOKEN = "hf_fake_token_without_access"
# Bytes of the header the fake single-file checkpoint declares beyond what it really holds.
WEIGHT_BYTES_PLACEHOLDER = 1 << 30


@dataclass
class Repo:
    repo_id: str
    files: dict[str, bytes]
    commit: str
    gated: bool = False
    # Extra named revisions (tags/branches) -> commit; "main" is always the commit.
    refs: dict[str, str] = field(default_factory=dict)
    # Bytes a file claims to have (LFS files whose body is never served in full).
    virtual_sizes: dict[str, int] = field(default_factory=dict)


def _commit_for(repo_id: str, salt: str = "") -> str:
    return hashlib.sha1(f"{repo_id}{salt}".encode()).hexdigest()


def _layer_tensors(config: dict[str, Any], layer: int) -> list[str]:
    text = config.get("text_config", config)
    prefix = f"model.layers.{layer}"
    names = [f"{prefix}.input_layernorm.weight", f"{prefix}.self_attn.o_proj.weight"]
    if text.get("n_routed_experts") or text.get("num_experts") or text.get("num_local_experts"):
        names.append(f"{prefix}.mlp.experts.0.down_proj.weight")
    else:
        names.append(f"{prefix}.mlp.down_proj.weight")
    return names


def build_index(config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """A model.safetensors.index.json shaped like the Hub's: metadata.total_size, weight_map."""
    text = config.get("text_config", config)
    layers = text.get("num_hidden_layers")
    layers = layers if isinstance(layers, int) else 0
    shards = int(meta.get("shards", 4))
    names = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]
    for layer in range(layers):
        names += _layer_tensors(config, layer)
    if meta.get("mtp_in_checkpoint"):
        extra = int(
            text.get("num_nextn_predict_layers")
            or text.get("mtp_num_hidden_layers")
            or text.get("num_mtp_modules")
            or 0
        )
        for layer in range(layers, layers + extra):
            names += _layer_tensors(config, layer)
            names += [f"model.layers.{layer}.eh_proj.weight", f"model.layers.{layer}.enorm.weight"]
            names += [f"model.layers.{layer}.embed_tokens.weight"]
            names += [f"model.layers.{layer}.shared_head.head.weight"]
    weight_map = {
        name: f"model-{i % shards + 1:05d}-of-{shards:05d}.safetensors"
        for i, name in enumerate(names)
    }
    index: dict[str, Any] = {"metadata": {}, "weight_map": weight_map}
    if meta.get("total_size"):
        index["metadata"]["total_size"] = int(meta["total_size"])
    return index


def safetensors_header(config: dict[str, Any]) -> bytes:
    """A real safetensors header for a small dense BF16 decoder (tensor shapes from config)."""
    hidden = int(config["hidden_size"])
    layers = int(config["num_hidden_layers"])
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads", heads))
    head_dim = int(config.get("head_dim") or hidden // heads)
    inter = int(config["intermediate_size"])
    vocab = int(config["vocab_size"])
    shapes: dict[str, list[int]] = {"model.embed_tokens.weight": [vocab, hidden]}
    shapes["model.norm.weight"] = [hidden]
    for i in range(layers):
        p = f"model.layers.{i}"
        shapes[f"{p}.self_attn.q_proj.weight"] = [heads * head_dim, hidden]
        shapes[f"{p}.self_attn.k_proj.weight"] = [kv_heads * head_dim, hidden]
        shapes[f"{p}.self_attn.v_proj.weight"] = [kv_heads * head_dim, hidden]
        shapes[f"{p}.self_attn.o_proj.weight"] = [hidden, heads * head_dim]
        shapes[f"{p}.self_attn.q_norm.weight"] = [head_dim]
        shapes[f"{p}.self_attn.k_norm.weight"] = [head_dim]
        shapes[f"{p}.mlp.gate_proj.weight"] = [inter, hidden]
        shapes[f"{p}.mlp.up_proj.weight"] = [inter, hidden]
        shapes[f"{p}.mlp.down_proj.weight"] = [hidden, inter]
        shapes[f"{p}.input_layernorm.weight"] = [hidden]
        shapes[f"{p}.post_attention_layernorm.weight"] = [hidden]
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        size = 2
        for dim in shape:
            size *= dim
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    body = json.dumps(header, separators=(",", ":")).encode()
    body += b" " * (-len(body) % 8)
    return struct.pack("<Q", len(body)) + body


def load_repos() -> dict[str, Repo]:
    repos: dict[str, Repo] = {}
    for directory in sorted(FIXTURES.iterdir()):
        if not (directory / "config.json").is_file():
            continue
        repo_id = directory.name.replace("--", "/", 1)
        config = json.loads((directory / "config.json").read_text())
        meta_path = directory / "repo.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        files = {"config.json": (directory / "config.json").read_bytes()}
        quant = directory / "hf_quant_config.json"
        if quant.is_file():
            files["hf_quant_config.json"] = quant.read_bytes()
        repo = Repo(repo_id, files, _commit_for(repo_id), gated=bool(meta.get("gated")))
        if meta.get("single_file"):
            header = safetensors_header(config)
            files["model.safetensors"] = header
            repo.virtual_sizes["model.safetensors"] = len(header) + WEIGHT_BYTES_PLACEHOLDER
        else:
            files["model.safetensors.index.json"] = json.dumps(build_index(config, meta)).encode()
        repos[repo_id] = repo
    return repos


@dataclass
class Logged:
    method: str
    path: str
    range: str | None
    status: int
    sent: int


class FakeHub:
    """The server; `url` goes into HF_ENDPOINT."""

    def __init__(self, repos: dict[str, Repo] | None = None) -> None:
        self.repos = load_repos() if repos is None else repos
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._serve(self, head=True)

            def do_GET(self) -> None:
                hub._serve(self, head=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=30)

    def requests(self) -> Iterator[Logged]:
        with self._lock:
            yield from list(self.log)

    # -----------------------------------------------------------------------------------------

    def _reply(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: dict[str, str],
        *,
        head: bool,
    ) -> None:
        # Logged before the reply leaves: a client that has its answer always finds it here.
        sent = 0 if head else len(body)
        with self._lock:
            self.log.append(
                Logged(handler.command, handler.path, handler.headers.get("Range"), status, sent)
            )
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", headers.get("Content-Length", str(len(body))))
        handler.end_headers()
        if not head:
            handler.wfile.write(body)

    def _error(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        code: str,
        message: str,
        head: bool,
        commit: str | None = None,
    ) -> None:
        body = json.dumps({"error": message}).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Error-Code": code,
            "X-Error-Message": message,
        }
        if commit is not None:
            # As the Hub does: the client records the missing file under that commit.
            headers["X-Repo-Commit"] = commit
        self._reply(handler, status, body, headers, head=head)

    def _access_denied(self, handler: BaseHTTPRequestHandler, repo: Repo, head: bool) -> bool:
        if not repo.gated:
            return False
        token = handler.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if token == VALID_TOKEN:
            return False
        message = (
            f"Access to model {repo.repo_id} is restricted. You must have access to it and be "
            "authenticated to access it. Please log in."
            if not token
            else f"Access to model {repo.repo_id} is restricted and you are not in the "
            "authorized list. Visit the repo page to ask for access."
        )
        self._error(handler, 401 if not token else 403, "GatedRepo", message, head)
        return True

    def _serve(self, handler: BaseHTTPRequestHandler, *, head: bool) -> None:
        path = unquote(handler.path.split("?", 1)[0])
        api = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
        resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        match = api or resolve
        if match is None:
            self._error(handler, 404, "NotFound", "Not Found", head)
            return
        repo = self.repos.get(match.group(1))
        if repo is None:
            self._error(handler, 401, "RepoNotFound", "Repository not found", head)
            return
        revision = match.group(2) or "main"
        commit = repo.commit if revision in ("main", repo.commit) else repo.refs.get(revision, "")
        if api is not None:
            if not commit:
                self._error(handler, 404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
                return
            info = {
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "sha": commit,
                "private": False,
                "gated": "manual" if repo.gated else False,
                "disabled": False,
                "siblings": [{"rfilename": name} for name in sorted(repo.files)],
            }
            body = json.dumps(info).encode()
            self._reply(handler, 200, body, {"Content-Type": "application/json"}, head=head)
            return
        if self._access_denied(handler, repo, head):
            return
        if not commit:
            self._error(handler, 404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
            return
        assert resolve is not None
        filename = resolve.group(3)
        content = repo.files.get(filename)
        if content is None:
            message = f"{filename} does not exist"
            self._error(handler, 404, "EntryNotFound", message, head, commit=commit)
            return
        self._file(handler, repo, commit, filename, content, head)

    def _file(
        self,
        handler: BaseHTTPRequestHandler,
        repo: Repo,
        commit: str,
        filename: str,
        content: bytes,
        head: bool,
    ) -> None:
        size = repo.virtual_sizes.get(filename, len(content))
        etag = hashlib.sha256(content).hexdigest()
        headers = {
            "X-Repo-Commit": commit,
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size),
        }
        if filename.endswith(".safetensors"):
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(size)
        wanted = handler.headers.get("Range")
        if head:
            self._reply(handler, 200, b"", headers, head=True)
            return
        if wanted:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
            if match is None:
                self._error(handler, 416, "RangeNotSatisfiable", "bad range", head)
                return
            start = int(match.group(1))
            end = min(int(match.group(2) or size - 1), size - 1)
            body = content[start : end + 1].ljust(end + 1 - start, b"\0")
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            headers["Content-Length"] = str(len(body))
            self._reply(handler, 206, body, headers, head=False)
            return
        if filename in repo.virtual_sizes:
            # The stand-in never sends weights; a client asking for them is a test failure.
            self._error(handler, 500, "WeightsRequested", "weights are never downloaded", head)
            return
        self._reply(handler, 200, content, headers, head=False)
