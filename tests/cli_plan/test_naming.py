"""Deployment names: derived from the model, validated when given."""

from __future__ import annotations

import pytest

from orchestrator.errors import InputError
from orchestrator.naming import check_name, default_name


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("qwen3-32b", "qwen3-32b"),
        ("Llama-3.1-8B", "llama-3-1-8b"),
        ("meta-llama/Llama-3.1-405B-Instruct", "llama-3-1-405b-instruct"),
        ("my_model__v2", "my-model-v2"),
        ("x" * 80, "x" * 63),
        ("___", "deployment"),
    ],
)
def test_default_name_is_a_dns_label(alias: str, name: str) -> None:
    assert default_name(alias) == name
    assert check_name(name) == name


@pytest.mark.parametrize("bad", ["Chat", "chat_prod", "-chat", "chat-", "a" * 64, ""])
def test_bad_names_are_rejected_with_a_fix(bad: str) -> None:
    with pytest.raises(InputError) as caught:
        check_name(bad)
    assert "is not a DNS label" in str(caught.value)
    assert caught.value.exit_code == 2
