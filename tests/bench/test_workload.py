"""Synthetic prompts, datasets and request bodies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.bench.workload import load_dataset, prepare, synthetic_items
from orchestrator.errors import BenchError


def test_synthetic_prompts_have_the_length_and_a_unique_first_word() -> None:
    items = synthetic_items(32, 16, 4, seed=1)
    prepared = prepare(items, model="m", endpoint="completions", ignore_eos=True)
    bodies = [json.loads(prepared[i % 4].body(i)) for i in range(8)]
    prompts = [b["prompt"] for b in bodies]
    assert all(len(p.split()) == 32 for p in prompts)
    assert [p.split()[0] for p in prompts] == [str(i) for i in range(8)]
    assert len(set(prompts)) == 8
    body = bodies[0]
    assert body["model"] == "m" and body["max_tokens"] == 16 and body["ignore_eos"] is True
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_chat_bodies_carry_messages_and_no_ignore_eos_when_off() -> None:
    prepared = prepare(synthetic_items(4, 2, 1), model="m", endpoint="chat", ignore_eos=False)
    body = json.loads(prepared[0].body(7))
    assert body["messages"][0]["role"] == "user"
    assert body["messages"][0]["content"].split()[0] == "7"
    assert "ignore_eos" not in body and "prompt" not in body


def test_dataset_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"prompt": "hello there", "output_len": 5}\n\n'
        '{"messages": [{"role": "user", "content": "hi"}], "id": 3}\n'
    )
    items = load_dataset(path, default_output_len=9)
    assert [(i.prompt, i.output_len) for i in items] == [("hello there", 5), (None, 9)]
    assert items[1].messages == [{"role": "user", "content": "hi"}]
    chat = prepare(items, model="m", endpoint="chat", ignore_eos=True)
    assert json.loads(chat[0].body(0))["messages"] == [{"role": "user", "content": "hello there"}]
    with pytest.raises(BenchError, match="use --endpoint chat"):
        prepare(items, model="m", endpoint="completions", ignore_eos=True)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2 is not valid JSON"),
        ("[1, 2]", "line 2 is not a JSON object"),
        ('{"output_len": 3}', "line 2 needs exactly one of 'prompt' or 'messages'"),
        ('{"prompt": "a", "messages": []}', "line 2 needs exactly one of"),
        ('{"prompt": 5}', "line 2: 'prompt' must be a string"),
        ('{"prompt": "a", "output_len": 0}', "line 2: 'output_len' must be a positive integer"),
        ('{"prompt": "a", "output_len": true}', "'output_len' must be a positive integer"),
        ('{"messages": [{"content": "x"}]}', "line 2: 'messages' must be a non-empty list"),
    ],
)
def test_malformed_dataset_names_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "fine"}\n' + line + "\n")
    with pytest.raises(BenchError, match=message.replace("[", r"\[").replace("(", r"\(")) as info:
        load_dataset(path, 4)
    assert info.value.exit_code == 2
    assert str(path) in str(info.value)


def test_empty_and_missing_datasets(tmp_path: Path) -> None:
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(BenchError, match="has no requests"):
        load_dataset(empty, 4)
    with pytest.raises(BenchError, match="cannot read dataset"):
        load_dataset(tmp_path / "missing.jsonl", 4)
