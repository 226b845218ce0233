"""The JSON bodies and SSE chunks of the OpenAI-compatible API, as vLLM and SGLang shape them."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from orchestrator.sim.settings import EngineName
from orchestrator.sim.tokens import GenerationRequest


def request_id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex


def sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": None,
    }


def error_body(
    engine: EngineName, status: int, message: str, param: str | None = None
) -> dict[str, Any]:
    kind = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError"}.get(
        status, "InternalServerError"
    )
    if engine == "vllm":
        return {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return {"object": "error", "message": message, "type": kind, "param": param, "code": status}


class ResponseBuilder:
    """Builds the chunks and the final body of one completion or chat request."""

    def __init__(self, engine: EngineName, chat: bool, model: str, gen: GenerationRequest) -> None:
        self.engine = engine
        self.chat = chat
        self.model = model
        self.gen = gen
        self.id = request_id(chat)
        self.created = int(time.time())

    def _base(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def role_chunk(self) -> dict[str, Any]:
        chunk = self._base("chat.completion.chunk")
        chunk["choices"] = [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ]
        return chunk

    def token_chunk(self, text: str, index: int, generated: int) -> dict[str, Any]:
        last = index == self.gen.output_tokens - 1
        finish = self.gen.finish_reason if last else None
        if self.chat:
            chunk = self._base("chat.completion.chunk")
            choice: dict[str, Any] = {
                "index": 0,
                "delta": {"content": text},
                "logprobs": None,
                "finish_reason": finish,
            }
        else:
            chunk = self._base("text_completion")
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        if self.engine == "vllm":
            choice["stop_reason"] = None
        chunk["choices"] = [choice]
        if self.gen.continuous_usage:
            chunk["usage"] = usage(self.gen.prompt_tokens, generated)
        return chunk

    def usage_chunk(self) -> dict[str, Any]:
        chunk = self._base("chat.completion.chunk" if self.chat else "text_completion")
        chunk["choices"] = []
        chunk["usage"] = usage(self.gen.prompt_tokens, self.gen.output_tokens)
        return chunk

    def full_response(self, text: str) -> dict[str, Any]:
        if self.chat:
            body = self._base("chat.completion")
            choice: dict[str, Any] = {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "reasoning_content": None,
                    "tool_calls": [],
                },
                "logprobs": None,
                "finish_reason": self.gen.finish_reason,
            }
        else:
            body = self._base("text_completion")
            choice = {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": self.gen.finish_reason,
            }
        if self.engine == "vllm":
            choice["stop_reason"] = None
        body["choices"] = [choice]
        body["usage"] = usage(self.gen.prompt_tokens, self.gen.output_tokens)
        return body


def native_chunk(
    rid: str, text: str, gen: GenerationRequest, generated: int, done: bool, e2e: float
) -> dict[str, Any]:
    """SGLang's native /generate body: the text so far and meta_info."""
    finish: dict[str, Any] | None = None
    if done:
        finish = (
            {"type": "length", "length": generated}
            if gen.finish_reason == "length"
            else {"type": "stop", "matched": 2}
        )
    return {
        "text": text,
        "meta_info": {
            "id": rid,
            "finish_reason": finish,
            "prompt_tokens": gen.prompt_tokens,
            "completion_tokens": generated,
            "cached_tokens": 0,
            "e2e_latency": e2e,
        },
    }
