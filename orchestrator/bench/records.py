"""One request's measurements, as the client saw them.

Times are `time.perf_counter()` seconds. A record is filled in place by the streaming client
(no per-chunk allocation beyond one float per content chunk) and summarised later by
`metrics`. It never holds the generated text: counting is all the metrics need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

# Error kinds, counted separately per level.
ERROR_CONNECTION = "connection"  # could not connect, or the connection failed before a response
ERROR_HTTP = "http_status"  # the server answered with a non-2xx status
ERROR_STREAM = (
    "stream_break"  # the stream ended or broke before `[DONE]`, or carried an error event
)
ERROR_TIMEOUT = "timeout"  # the request ran past its timeout or the drain bound
ERROR_KINDS = (ERROR_CONNECTION, ERROR_HTTP, ERROR_STREAM, ERROR_TIMEOUT)

# Where a request's output token count came from.
TOKENS_FROM_USAGE = "usage"  # the server's `usage.completion_tokens`
TOKENS_FROM_CHUNKS = "chunks"  # the number of content-bearing chunks (one token each, assumed)


@dataclass(slots=True)
class RequestRecord:
    """Timing and outcome of one request."""

    index: int
    level_index: int
    start: float = 0.0
    end: float = 0.0
    # perf_counter time of every content-bearing chunk, in arrival order
    chunk_times: list[float] = field(default_factory=list)
    prompt_tokens: int | None = None  # from usage when the server sent it
    input_len: int = 0  # what the workload intended
    usage_tokens: int | None = None  # usage.completion_tokens
    error_kind: str | None = None
    error: str | None = None
    status: int | None = None
    in_window: bool = False
    warmup: bool = False

    @property
    def ok(self) -> bool:
        return self.error_kind is None

    @property
    def output_tokens(self) -> int:
        """The server's count when it sent usage, else the content chunks counted."""
        if self.usage_tokens is not None:
            return self.usage_tokens
        return len(self.chunk_times)

    @property
    def token_source(self) -> str:
        return TOKENS_FROM_USAGE if self.usage_tokens is not None else TOKENS_FROM_CHUNKS

    @property
    def ttft(self) -> float | None:
        """Seconds from sending the request to the first content-bearing chunk."""
        if not self.chunk_times:
            return None
        return self.chunk_times[0] - self.start

    @property
    def e2el(self) -> float:
        return self.end - self.start

    @property
    def tpot(self) -> float | None:
        """vLLM's TPOT: (e2e - ttft) / (output tokens - 1); None for one-token outputs."""
        ttft = self.ttft
        tokens = self.output_tokens
        if ttft is None or tokens < 2:
            return None
        return (self.e2el - ttft) / (tokens - 1)

    def itls(self) -> list[float]:
        """Each gap between consecutive content-bearing chunks (vLLM's ITL)."""
        times = self.chunk_times
        return [b - a for a, b in pairwise(times)]
