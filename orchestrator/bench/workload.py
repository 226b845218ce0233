"""What each request asks for: synthetic prompts of a given length, or a JSONL dataset.

Request bodies are serialised to bytes once, before the load starts, so the hot path only
splices a request number into a prepared byte string.

Synthetic prompts are an approximation of `--input-len` tokens: N words drawn from common
English words that are one token each in the Llama 3, Qwen 2/3, Mistral and GPT tokenizers
(with their leading space). The first word is the request's number, so no two prompts share a
prefix and prefix caching cannot shorten prefill. The server's `usage.prompt_tokens`, when
sent, gives the true count, and the report shows it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import BenchError

ENDPOINT_PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}

# One token each (with a leading space) in the common BPE vocabularies.
_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "his",
    "her",
    "are",
    "be",
    "this",
    "an",
    "which",
    "or",
    "had",
    "not",
    "but",
    "have",
    "they",
    "one",
    "all",
    "were",
    "we",
    "their",
    "been",
    "has",
    "more",
    "when",
    "who",
    "will",
    "there",
    "would",
    "can",
    "out",
    "other",
    "so",
    "what",
    "time",
    "up",
    "about",
    "into",
    "only",
    "some",
    "could",
    "them",
    "than",
    "new",
    "first",
    "then",
    "two",
    "its",
    "these",
    "may",
    "any",
    "like",
    "over",
    "after",
    "also",
    "did",
    "many",
    "most",
    "made",
    "such",
    "where",
    "way",
    "well",
    "back",
    "before",
    "must",
    "through",
    "years",
    "just",
    "see",
    "much",
    "own",
    "people",
    "used",
    "those",
    "work",
    "long",
    "old",
    "good",
    "well",
    "state",
    "city",
    "world",
    "school",
    "house",
    "water",
    "life",
    "day",
    "part",
    "place",
    "great",
    "small",
    "year",
    "name",
    "number",
]

# Marks where the request number goes in a prepared body.
_NUMBER_MARK = "\x00N\x00"


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One request's content: a prompt or chat messages, and how many tokens to generate."""

    prompt: str | None
    messages: list[dict[str, Any]] | None
    output_len: int
    input_len: int  # intended prompt tokens (synthetic) or a word-count estimate (dataset)


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A serialised body, split where the request number is spliced in (synthetic prompts)."""

    head: bytes
    tail: bytes  # empty when the body carries no number mark
    input_len: int
    output_len: int

    def body(self, number: int) -> bytes:
        if not self.tail:
            return self.head
        return self.head + str(number).encode() + self.tail


def synthetic_items(input_len: int, output_len: int, count: int, seed: int = 0) -> list[WorkItem]:
    """`count` distinct word orders of `input_len` words, the first word left for the number."""
    if input_len < 1 or output_len < 1:
        raise BenchError("--input-len and --output-len must be at least 1")
    rng = random.Random(seed)
    items = []
    for _ in range(count):
        words = [rng.choice(_WORDS) for _ in range(input_len - 1)]
        prompt = " ".join([_NUMBER_MARK, *words])
        items.append(WorkItem(prompt, None, output_len, input_len))
    return items


# Distinct synthetic prompts, cycled; and the bytes of them kept in memory. Past that budget
# (prompts of hundreds of thousands of tokens) each body is rebuilt when it is sent: its cost
# is small next to the server's prefill of the same prompt, and memory stays flat.
SYNTHETIC_PROMPTS = 64
CACHE_BYTES = 64 * 2**20


def lazy_synthetic(
    input_len: int,
    output_len: int,
    count: int,
    seed: int,
    *,
    model: str,
    endpoint: str,
    ignore_eos: bool,
) -> Iterator[PreparedRequest]:
    """Synthetic request bodies, made one at a time as the load asks for them: prompt i is
    drawn from its own seeded generator, so a run is reproducible however far it goes."""
    if input_len < 1 or output_len < 1:
        raise BenchError("--input-len and --output-len must be at least 1")
    cache: dict[int, PreparedRequest] = {}
    keep = input_len * 8 * count <= CACHE_BYTES  # about 8 bytes per word in the body
    index = 0
    while True:
        slot = index % count
        prepared = cache.get(slot)
        if prepared is None:
            rng = random.Random(seed * 1_000_003 + slot)
            words = [rng.choice(_WORDS) for _ in range(input_len - 1)]
            item = WorkItem(" ".join([_NUMBER_MARK, *words]), None, output_len, input_len)
            (prepared,) = prepare([item], model=model, endpoint=endpoint, ignore_eos=ignore_eos)
            if keep:
                cache[slot] = prepared
        yield prepared
        index += 1


# A dataset is read line by line, within these bounds, so a huge file or a device that never
# ends (/dev/zero, /dev/urandom) is refused after a bounded read instead of filling memory.
MAX_DATASET_BYTES = 256 * 2**20
MAX_LINE_BYTES = 64 * 2**20  # one request: a prompt of millions of tokens still fits
MAX_DATASET_REQUESTS = 1_000_000


def load_dataset(path: Path, default_output_len: int) -> list[WorkItem]:
    """Read `{"prompt": ..., "output_len": ...}` or `{"messages": [...], ...}` lines."""
    items: list[WorkItem] = []
    total = 0
    try:
        with open(path, "rb") as handle:
            for number in range(1, MAX_DATASET_REQUESTS * 4):
                raw = handle.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    break
                total += len(raw)
                if len(raw) > MAX_LINE_BYTES:
                    raise BenchError(
                        f"dataset {path} line {number} is longer than "
                        f"{MAX_LINE_BYTES // 2**20} MiB",
                        "write one JSON object per line, each under that size",
                    )
                if total > MAX_DATASET_BYTES:
                    raise BenchError(
                        f"dataset {path} is larger than {MAX_DATASET_BYTES // 2**20} MiB",
                        "benchmark with a sample of it",
                    )
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise BenchError(
                        f"dataset {path} line {number} is not UTF-8 text", "write it as UTF-8 JSONL"
                    ) from None
                if not line.strip():
                    continue
                if len(items) == MAX_DATASET_REQUESTS:
                    raise BenchError(
                        f"dataset {path} holds more than {MAX_DATASET_REQUESTS} requests",
                        "benchmark with a sample of it",
                    )
                items.append(_parse_line(path, number, line, default_output_len))
            else:
                raise BenchError(
                    f"dataset {path} has more than {MAX_DATASET_REQUESTS * 4} lines",
                    "benchmark with a sample of it",
                )
    except OSError as error:
        raise BenchError(
            f"cannot read dataset {path}: {error.strerror or error}", "check the path"
        ) from None
    if not items:
        raise BenchError(f"dataset {path} has no requests", "write one JSON object per line")
    return items


def _parse_line(path: Path, number: int, line: str, default_output_len: int) -> WorkItem:
    where = f"dataset {path} line {number}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as error:
        raise BenchError(
            f"{where} is not valid JSON ({error.msg})", "write one JSON object per line"
        ) from None
    if not isinstance(obj, dict):
        raise BenchError(f"{where} is not a JSON object", 'use {"prompt": "...", "output_len": N}')
    prompt, messages = obj.get("prompt"), obj.get("messages")
    if (prompt is None) == (messages is None):
        raise BenchError(f"{where} needs exactly one of 'prompt' or 'messages'")
    output_len = obj.get("output_len", default_output_len)
    if isinstance(output_len, bool) or not isinstance(output_len, int) or output_len < 1:
        raise BenchError(f"{where}: 'output_len' must be a positive integer")
    if prompt is not None:
        if not isinstance(prompt, str):
            raise BenchError(f"{where}: 'prompt' must be a string")
        return WorkItem(prompt, None, output_len, len(prompt.split()))
    if not isinstance(messages, list) or not messages or not all(_is_message(m) for m in messages):
        raise BenchError(
            f"{where}: 'messages' must be a non-empty list of {{'role': ..., 'content': ...}}"
        )
    words = sum(len(str(m["content"]).split()) for m in messages)
    return WorkItem(None, messages, output_len, words)


def _is_message(message: Any) -> bool:
    return (
        isinstance(message, dict) and isinstance(message.get("role"), str) and "content" in message
    )


def prepare(
    items: list[WorkItem], *, model: str, endpoint: str, ignore_eos: bool
) -> list[PreparedRequest]:
    """Serialise each item once; the request number goes where the mark is."""
    prepared = []
    for item in items:
        body: dict[str, Any] = {"model": model}
        if endpoint == "chat":
            messages = item.messages or [{"role": "user", "content": item.prompt}]
            body["messages"] = messages
        else:
            if item.messages is not None:
                raise BenchError(
                    "the dataset has chat 'messages'", "use --endpoint chat, or give 'prompt' lines"
                )
            body["prompt"] = item.prompt
        body["max_tokens"] = item.output_len
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        if ignore_eos:
            # vLLM and SGLang extension: generate exactly max_tokens.
            body["ignore_eos"] = True
        encoded = json.dumps(body, ensure_ascii=False).encode()
        mark = json.dumps(_NUMBER_MARK)[1:-1].encode()
        head, found, tail = encoded.partition(mark)
        if found:
            prepared.append(PreparedRequest(head, tail, item.input_len, item.output_len))
        else:
            prepared.append(PreparedRequest(encoded, b"", item.input_len, item.output_len))
    return prepared


def cycle(prepared: list[PreparedRequest]) -> Iterator[PreparedRequest]:
    while True:
        yield from prepared
