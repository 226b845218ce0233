"""A minimal OpenAI-style streaming server for measuring the benchmark client itself.

Raw asyncio protocol, HTTP/1.1 keep-alive, chunked transfer encoding: every request to
/v1/completions or /v1/chat/completions gets `max_tokens` content chunks (default 16), a
usage chunk and `[DONE]`, each its own HTTP chunk, all at once with no delay. It does as little as
possible so that the client, not this server, is what a run measures.

Run: python benchmarks/stream_server.py [PORT [DELAY_MS]]
(prints the URL, then serves until killed; DELAY_MS holds every stream back, a known TTFT)
"""

from __future__ import annotations

import asyncio
import re
import sys
from typing import ClassVar

_MAX_TOKENS = re.compile(rb'"max_tokens"\s*:\s*(\d+)')
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)
_MODELS = b'{"object":"list","data":[{"id":"bench-model","object":"model"}]}'
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
)


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _events(tokens: int, chat: bool) -> list[bytes]:
    events = []
    for i in range(tokens):
        if chat:
            body = (
                b'{"id":"b","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" tok%d"},"finish_reason":null}],"usage":null}'
                % i
            )
        else:
            body = (
                b'{"id":"b","object":"text_completion","choices":[{"index":0,"text":" tok%d","finish_reason":null}],"usage":null}'
                % i
            )
        events.append(_chunk(b"data: " + body + b"\n\n"))
    usage = (
        b'{"id":"b","choices":[],"usage":{"prompt_tokens":16,"completion_tokens":%d,"total_tokens":%d}}'
        % (tokens, tokens + 16)
    )
    events.append(_chunk(b"data: " + usage + b"\n\n"))
    events.append(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
    return events  # fmt: skip


class StreamProtocol(asyncio.Protocol):
    cache: ClassVar[dict[tuple[int, bool], bytes]] = {}
    delay = 0.0  # seconds before the whole stream is written (a fixed TTFT)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            match = _LENGTH.search(head)
            length = int(match.group(1)) if match else 0
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.respond(head, body)

    def respond(self, head: bytes, body: bytes) -> None:
        line = head.split(b"\r\n", 1)[0]
        write = self.transport.write
        if line.startswith(b"GET /v1/models"):
            write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(_MODELS), _MODELS))  # fmt: skip
            return
        match = _MAX_TOKENS.search(body)
        tokens = int(match.group(1)) if match else 16
        key = (tokens, b"/chat/" in line)
        events = self.cache.get(key)
        if events is None:
            events = self.cache[key] = _STREAM_HEAD + b"".join(_events(*key))
        # one write: the client still parses every chunk, the server spends one syscall
        if self.delay > 0:
            asyncio.get_running_loop().call_later(self.delay, write, events)
        else:
            write(events)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StreamProtocol, "127.0.0.1", port, backlog=1024)
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) > 2:
        StreamProtocol.delay = float(sys.argv[2]) / 1000
    asyncio.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
