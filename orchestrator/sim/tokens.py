"""The simulated tokenizer and the OpenAI request fields that decide how much to generate.

Token counting rule (documented so that clients can predict usage counts): a text is split on
whitespace, and each word counts ceil(len(word) / 4) tokens, at least one. A prompt given as a
list of token ids counts its length. A chat prompt counts its message texts plus 4 tokens of
template per message and 2 for the assistant prefix. Output tokens are short words (at most 4
characters, each with a leading space), so the output text counts exactly its token number
under the same rule.

Output length: `max_tokens` (or `max_completion_tokens`; default 16 for completions, the
remaining context for chat), cut at the simulated EOS after `eos_tokens` tokens unless
`ignore_eos` is true; `min_tokens` holds EOS back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

CHAT_TOKENS_PER_MESSAGE = 4
CHAT_TOKENS_ASSISTANT_PREFIX = 2
COMPLETIONS_DEFAULT_MAX_TOKENS = 16

# Words of at most 4 characters: each is one token under the counting rule above.
_VOCAB = tuple(
    [
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "it",
        "for",
        "on",
        "was",
        "with",
        "as",
        "at",
        "by",
        "be",
        "this",
        "are",
        "from",
        "or",
        "an",
        "that",
        "had",
        "not",
        "but",
        "have",
        "one",
        "all",
        "were",
        "we",
        "when",
        "can",
        "said",
        "out",
        "so",
        "up",
        "her",
        "his",
        "what",
        "use",
        "each",
        "she",
        "do",
        "how",
        "if",
        "will",
        "way",
        "many",
        "then",
        "them",
        "its",
        "two",
        "more",
        "go",
        "see",
        "no",
        "my",
        "than",
        "been",
        "now",
    ]
)


class RequestError(ValueError):
    """A request the engine would answer with 400; `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def count_text_tokens(text: str) -> int:
    return sum(max(1, math.ceil(len(word) / 4)) for word in text.split())


def output_token(index: int, seed: int = 0) -> str:
    return " " + _VOCAB[(seed + index) % len(_VOCAB)]


def output_text(count: int, seed: int = 0) -> str:
    return "".join(output_token(i, seed) for i in range(count))


def _message_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return " ".join(parts)
    raise RequestError("message content must be a string or a list of parts", "messages")


def count_prompt_tokens(body: dict[str, Any], *, chat: bool) -> int:
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError("'messages' must be a non-empty list", "messages")
        total = CHAT_TOKENS_ASSISTANT_PREFIX
        for message in messages:
            if not isinstance(message, dict) or "role" not in message:
                raise RequestError("each message needs a 'role'", "messages")
            total += CHAT_TOKENS_PER_MESSAGE + count_text_tokens(
                _message_text(message.get("content"))
            )
        return total
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return count_text_tokens(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return len(prompt)
    if isinstance(prompt, list) and len(prompt) == 1:
        only = prompt[0]
        if isinstance(only, str):
            return count_text_tokens(only)
        if isinstance(only, list) and all(isinstance(t, int) for t in only):
            return len(only)
    if isinstance(prompt, list) and len(prompt) > 1:
        raise RequestError("the simulator serves one prompt per request, not a batch", "prompt")
    raise RequestError("'prompt' must be a string or a list of token ids", "prompt")


def _optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"'{name}' must be an integer", name)
    return value


@dataclass(frozen=True)
class GenerationRequest:
    """How many tokens to produce for one request, and how to answer."""

    prompt_tokens: int
    output_tokens: int
    finish_reason: str  # "length" or "stop"
    stream: bool
    include_usage: bool
    continuous_usage: bool
    model: str | None
    seed: int


def parse_generation(
    body: dict[str, Any], *, chat: bool, max_model_len: int, eos_tokens: int
) -> GenerationRequest:
    prompt_tokens = count_prompt_tokens(body, chat=chat)
    max_tokens = _optional_int(body, "max_tokens")
    if max_tokens is None:
        max_tokens = _optional_int(body, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = (
            max(1, max_model_len - prompt_tokens) if chat else COMPLETIONS_DEFAULT_MAX_TOKENS
        )
    if max_tokens < 1:
        raise RequestError(f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens")
    if prompt_tokens + max_tokens > max_model_len:
        raise RequestError(
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {max_tokens} output tokens and your prompt contains {prompt_tokens} "
            f"input tokens, for a total of {prompt_tokens + max_tokens} tokens. Please reduce "
            "the length of the input prompt or the number of requested output tokens.",
            "max_tokens" if prompt_tokens < max_model_len else "input_tokens",
        )
    min_tokens = _optional_int(body, "min_tokens") or 0
    ignore_eos = bool(body.get("ignore_eos", False))
    if ignore_eos:
        count, reason = max_tokens, "length"
    else:
        natural = max(eos_tokens, min_tokens)
        count, reason = (natural, "stop") if natural < max_tokens else (max_tokens, "length")
    stream = bool(body.get("stream", False))
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise RequestError("'stream_options' must be an object", "stream_options")
    if options and not stream:
        raise RequestError(
            "Stream options can only be defined when `stream=True`.", "stream_options"
        )
    model = body.get("model")
    return GenerationRequest(
        prompt_tokens=prompt_tokens,
        output_tokens=count,
        finish_reason=reason,
        stream=stream,
        include_usage=bool(options.get("include_usage", False)),
        continuous_usage=bool(options.get("continuous_usage_stats", False)),
        model=model if isinstance(model, str) else None,
        seed=prompt_tokens,
    )
