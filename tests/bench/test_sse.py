"""Event-stream parsing on the wire: line endings, split reads, what counts as a token."""

from __future__ import annotations

from typing import Any

from orchestrator.bench.options import BenchOptions
from orchestrator.bench.runner import run_bench


def one_request(url: str, endpoint: str = "completions") -> Any:
    options = BenchOptions(base_url=url, concurrency=(1,), endpoint=endpoint, input_len=4,
                           output_len=3, requests=1, warmup=0)  # fmt: skip
    return run_bench(options).levels[0].records[0]


def test_crlf_no_space_split_lines_and_a_last_line_without_newline(make_server: Any) -> None:
    server = make_server(raw=[
        b'data:{"choices":[{"text":"a"}],"usage":null}\r\n\r\ndata: {"choi',
        b'ces":[{"text":"b"}]}\r\n\r\n',
        b'data: {"choices":[{"text":""}]}\n\ndata: {"choices":[{"text":"c"}]}\n\n',
        b'data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":3}}\n\n',
        b"data: [DONE]",
    ])  # fmt: skip
    record = one_request(server.url)
    assert record.ok, record.error
    assert len(record.chunk_times) == 3  # the empty text is not a token
    assert record.usage_tokens == 3 and record.prompt_tokens == 4
    # the two halves of the second event arrived apart: it is stamped when complete
    assert record.chunk_times[1] - record.chunk_times[0] >= 0.004


def test_chat_role_and_empty_deltas_are_not_tokens(make_server: Any) -> None:
    server = make_server(raw=[
        b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n',
        b'data: {"choices":[{"delta":{"reasoning_content":"hm"}}]}\n\n',
        b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n',
        b'data: {"choices":[{"delta":{"content":null},"finish_reason":"stop"}]}\n\n',
        b"data: [DONE]\n\n",
    ])  # fmt: skip
    record = one_request(server.url, "chat")
    assert record.ok, record.error
    assert len(record.chunk_times) == 2
    assert record.token_source == "chunks" and record.output_tokens == 2


def test_a_stream_without_done_or_events(make_server: Any) -> None:
    cut = make_server(raw=[b'data: {"choices":[{"text":"a"}]}\n\n'])
    record = one_request(cut.url)
    assert (record.error_kind, record.error) == ("stream_break", "stream ended before [DONE]")
    plain = make_server(raw=[b'{"choices":[{"text":"x"}]}'], raw_type="application/json")
    record = one_request(plain.url)
    assert (record.error_kind, record.error) == (
        "stream_break",
        'the response was not an event stream (application/json): {"choices":[{"text":"x"}]}',
    )
    assert record.chunk_times == []


def test_reasoning_and_content_on_one_line_count_once(make_server: Any) -> None:
    server = make_server(raw=[
        b'data: {"choices":[{"delta":{"reasoning_content":"a","content":"b"}}]}\n\n',
        b"data: [DONE]\n\n",
    ])  # fmt: skip
    assert len(one_request(server.url, "chat").chunk_times) == 1
