"""Cluster YAML is loaded within bounds: alias bombs, alias cycles, depth and size."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.errors import HardwareError
from orchestrator.hardware.cluster_file import load_cluster
from orchestrator.hardware.yaml_source import MAX_DOCUMENT_BYTES


def billion_laughs(levels: int = 6) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join([*lines, "name: bomb", "nodes: []", ""])


def refused(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cluster.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HardwareError) as caught:
        load_cluster(path)
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert "\n" not in message
    return message.replace(str(path), "cluster.yaml")


def test_nested_aliases_are_refused_without_expanding(tmp_path: Path) -> None:
    # 9**6 strings, ~600k values if expanded (9**9 in the classic form): refused from the alias graph, in one line.
    assert refused(tmp_path, billion_laughs()) == (
        "cluster.yaml:6: aliases expand this document to over 200000 values; "
        "write the values out instead of nesting aliases"
    )


def test_a_few_shared_aliases_still_load(tmp_path: Path) -> None:
    text = (
        "name: shared\nfabric: none\n"
        "defaults: &d\n  gpus: 1xH100-80GB\n"
        "nodes:\n  - name: a\n    address: 127.0.0.1\n    <<: *d\n"
    )
    path = tmp_path / "cluster.yaml"
    path.write_text(text, encoding="utf-8")
    assert [node.name for node in load_cluster(path).nodes] == ["a"]


@pytest.mark.parametrize("text", ["name: &n [*n]\n", "name: &n\n  inner: *n\nnodes: []\n"])
def test_a_self_referencing_alias_is_refused(tmp_path: Path, text: str) -> None:
    assert refused(tmp_path, text) == (
        "cluster.yaml:1: an alias refers to the value that contains it (a recursive "
        "structure); replace the alias with the values it stands for"
    )


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    assert refused(tmp_path, "name: " + "[" * 150 + "]" * 150 + "\n") == (
        "cluster.yaml:1: the document is nested over 100 levels deep; flatten it"
    )


def test_an_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    assert refused(tmp_path, "#" * (MAX_DOCUMENT_BYTES + 1)) == (
        "cluster.yaml: the file is over 4 MiB; a cluster file describes nodes in a few "
        "kilobytes; check the path"
    )


def test_plan_answers_an_alias_bomb_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs(), encoding="utf-8")
    result = CliRunner().invoke(cli, ["plan", "qwen3-8b", "--cluster", str(path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {path}:6: aliases expand this document to over 200000 values; "
        "write the values out instead of nesting aliases\n"
    )
