"""The streaming HTTP client: one shared aiohttp session, SSE read in chunks.

The hot path reads whatever bytes have arrived (`readany`) and scans the complete lines of
that read with compiled regexes; `json.loads` runs only on the lines that carry a `usage`
object, so a 1,000-token stream costs one parse, not a thousand. A content chunk is a
`data:` event with a non-empty `text` (completions) or `content` / `reasoning_content` delta
(chat); role-only, finish and usage chunks are not content. Every content chunk is
time-stamped when its bytes arrive; chunks that arrive in the same read share a time stamp,
as they do in vLLM's benchmark.
"""

from __future__ import annotations

import asyncio
import json
import re
from time import perf_counter
from typing import TYPE_CHECKING, Any

from orchestrator.bench.records import (
    ERROR_CONNECTION,
    ERROR_HTTP,
    ERROR_STREAM,
    ERROR_TIMEOUT,
    RequestRecord,
)
from orchestrator.errors import BenchError

if TYPE_CHECKING:
    import aiohttp

    from orchestrator.bench.bounds import Credentials

# A non-empty text (completions) or content / reasoning delta (chat). The match runs to the
# end of its line, so a line counts once however many such fields it carries. Only event
# streams are scanned (the content type is checked first), where every line with JSON is a
# `data:` line.
_CONTENT = re.compile(rb'"(?:text|content|reasoning_content|reasoning)"\s*:\s*"(?!")[^\n]*')
_ERROR = re.compile(rb'^data:[ \t]*\{\s*"error"\s*:', re.MULTILINE)
_DONE = re.compile(rb"^data:[ \t]*\[DONE\]", re.MULTILINE)


def make_session(
    max_connections: int,
    request_timeout: float,
    api_key: str | None,
    credentials: Credentials | None = None,
    trust_env: bool = False,
) -> aiohttp.ClientSession:
    """The one session every request shares; call inside the running event loop. With
    `trust_env`, HTTP(S)_PROXY and NO_PROXY apply (for servers that are not on loopback)."""
    import aiohttp

    connector = aiohttp.TCPConnector(
        limit=max_connections,  # 0 = unlimited (open-loop rates without a cap)
        limit_per_host=0,
        keepalive_timeout=120,
        ttl_dns_cache=None,
        enable_cleanup_closed=False,
    )
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if credentials is not None:
        import base64

        pair = f"{credentials.user}:{credentials.password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return aiohttp.ClientSession(
        connector=connector,
        headers=headers,
        trust_env=trust_env,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
        read_bufsize=1 << 16,
        timeout=aiohttp.ClientTimeout(total=request_timeout, sock_connect=10),
    )


async def stream_request(
    session: aiohttp.ClientSession, url: str, body: bytes, record: RequestRecord
) -> None:
    """Send one streaming request and fill `record`; never raises except on cancellation."""
    import aiohttp

    record.start = perf_counter()
    responded = False
    try:
        async with session.post(url, data=body) as response:
            responded = True
            record.status = response.status
            if response.status >= 300:
                text = (await response.content.read(300)).decode(errors="replace")
                record.error_kind = ERROR_HTTP
                record.error = f"HTTP {response.status}: {_one_line(text)}"
                return
            if response.content_type != "text/event-stream":
                text = (await response.content.read(300)).decode(errors="replace")
                record.error_kind = ERROR_STREAM
                record.error = _one_line(
                    f"the response was not an event stream ({response.content_type}): {text}"
                )
                return
            await _read_events(response.content, record)
    except asyncio.CancelledError:
        record.error_kind = ERROR_TIMEOUT
        record.error = "still running at the drain bound"
        raise
    except asyncio.TimeoutError:
        record.error_kind = ERROR_TIMEOUT
        record.error = "request timed out"
    except aiohttp.ClientError as error:
        record.error_kind = ERROR_STREAM if responded else ERROR_CONNECTION
        record.error = _one_line(f"{type(error).__name__}: {error}")
    except OSError as error:
        record.error_kind = ERROR_STREAM if responded else ERROR_CONNECTION
        record.error = _one_line(f"{type(error).__name__}: {error}")
    finally:
        record.end = perf_counter()


async def _read_events(stream: aiohttp.StreamReader, record: RequestRecord) -> None:
    # Work on whole reads, not lines: the regexes scan every complete line of a read in C,
    # so a read holding twenty events costs a few calls, not twenty loop turns.
    times = record.chunk_times
    find_content = _CONTENT.findall
    pending = b""
    done = False
    ended = False
    while not ended:
        data = await stream.readany()
        now = perf_counter()
        if not data:
            if not pending:
                break
            data, ended = b"\n", True  # a last line that lacks its newline
        if pending:
            data = pending + data
        cut = data.rfind(b"\n") + 1
        if cut < len(data):
            data, pending = data[:cut], data[cut:]
        else:
            pending = b""
        if not data:
            continue
        found = find_content(data)
        if found:
            times.extend([now] * len(found))
        if b'"completion_tokens"' in data:
            _take_usage(data, record)
        if b"[DONE]" in data and _DONE.search(data) is not None:
            done = True
        if b'"error"' in data:
            error = _ERROR.search(data)
            if error is not None:
                record.error_kind = ERROR_STREAM
                line = data[error.start() :].split(b"\n", 1)[0]
                record.error = _one_line(f"error event: {line[:200].decode(errors='replace')}")
                return
    if not done:
        record.error_kind = ERROR_STREAM
        record.error = "stream ended before [DONE]"


def _take_usage(data: bytes, record: RequestRecord) -> None:
    """Parse the last line of a read that carries usage counts (a usage object always has
    `completion_tokens`; `"usage": null` lines never do)."""
    at = data.rfind(b'"completion_tokens"')
    line = data[data.rfind(b"\n", 0, at) + 1 : data.find(b"\n", at)]
    if not line.startswith(b"data:"):
        return
    try:
        usage = json.loads(line[5:]).get("usage") or {}
    except (json.JSONDecodeError, AttributeError):
        return
    completion = usage.get("completion_tokens")
    if isinstance(completion, int):
        record.usage_tokens = completion
    prompt = usage.get("prompt_tokens")
    if isinstance(prompt, int):
        record.prompt_tokens = prompt


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


async def first_model(session: aiohttp.ClientSession, base_url: str, data: Any = None) -> str:
    """The first id of `/v1/models`; a one-line error when the server cannot be reached."""
    if data is None:
        data = await get_json(session, base_url + "/v1/models")
    models = data.get("data") if isinstance(data, dict) else None
    if not isinstance(models, list) or not models or not isinstance(models[0], dict):
        raise BenchError(f"{base_url}/v1/models lists no model", "pass --model NAME")
    return str(models[0].get("id"))


async def model_listing(session: aiohttp.ClientSession, base_url: str) -> Any:
    """`/v1/models` as JSON when the server answers it, else None (the model was named)."""
    await check_reachable(session, base_url)
    try:
        return await get_json(session, base_url + "/v1/models")
    except BenchError:
        return None


async def check_reachable(session: aiohttp.ClientSession, base_url: str) -> None:
    """Raise a one-line error when nothing answers HTTP at `base_url`."""
    await get_json(session, base_url + "/v1/models", must_be_ok=False)


async def get_json(session: aiohttp.ClientSession, url: str, *, must_be_ok: bool = True) -> Any:
    import aiohttp

    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=15)) as response:
            if not must_be_ok:
                return None
            if response.status == 401 or response.status == 403:
                raise BenchError(
                    f"{url} answered HTTP {response.status}",
                    "pass --api-key-env VAR naming the variable that holds the key",
                )
            if response.status >= 300:
                raise BenchError(f"{url} answered HTTP {response.status}", "pass --model NAME")
            return await response.json(content_type=None)
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as error:
        from orchestrator.bench.bounds import redact

        reason = redact(_one_line(str(error))) or type(error).__name__
        raise BenchError(
            f"cannot reach {url}: {reason}", "check the URL and that the server is up"
        ) from None
    except (json.JSONDecodeError, ValueError):
        raise BenchError(f"{url} did not answer JSON", "pass --model NAME") from None
