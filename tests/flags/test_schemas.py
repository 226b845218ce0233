"""Every committed flag schema loads and matches the parser it was generated from."""

from __future__ import annotations

import json

import pytest

from orchestrator.engines.flags import (
    accepts,
    known_versions,
    load_schema,
    schema_path,
    versions_accepting,
)
from orchestrator.engines.versions import releases
from orchestrator.errors import FlagError
from orchestrator.resources import profiles_dir

# Option counts of each real parser (without --help), as engines.md §9 reports them for the
# newest releases; the older releases' counts come from the same generator run.
EXPECTED_OPTION_COUNTS = {
    ("vllm", "0.33.0"): 320,
    ("vllm", "0.32.0"): 316,
    ("sglang", "0.5.23"): 531,
    ("sglang", "0.5.22"): 521,
    ("sglang", "0.5.21"): 512,
    ("sglang", "0.5.19"): 503,
    ("smg", "1.13.0"): 212,
    ("vllm-router", "0.1.17"): 71,
    ("sglang-router", "0.3.2"): 98,
}


def committed_schemas() -> list[tuple[str, str]]:
    found = []
    for path in sorted((profiles_dir() / "engines").glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        found.append((raw["engine"], raw["version"]))
    return found


def test_every_expected_schema_is_committed() -> None:
    assert set(EXPECTED_OPTION_COUNTS) <= set(committed_schemas())


@pytest.mark.parametrize(("engine", "version"), committed_schemas())
def test_schema_loads_and_is_consistent(engine: str, version: str) -> None:
    path = schema_path(engine, version)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert path.name == f"{engine}-{version}.json"
    assert raw["option_count"] == len(raw["options"])
    assert raw["generated_by"].startswith(f"scripts/gen_flag_schemas.py {engine} {version} ")
    schema = load_schema(engine, version)
    assert len(schema.options) == raw["option_count"]
    spellings = [flag for option in schema.options for flag in option.all_flags]
    assert len(spellings) == len(set(spellings)), "a flag belongs to two options"
    assert "--help" not in schema.by_flag
    for option in schema.options:
        assert all(flag.startswith("-") for flag in option.all_flags)
        assert set(option.negative_flags) <= set(option.all_flags)
        if option.negative_flags or option.nargs == 0:
            assert option.boolean
    expected = EXPECTED_OPTION_COUNTS.get((engine, version))
    if expected is not None:
        assert raw["option_count"] == expected


def test_load_schema_is_cached() -> None:
    assert load_schema("vllm", "0.33.0") is load_schema("vllm", "0.33.0")
    assert load_schema("vllm", "v0.33.0") is load_schema("vllm", "0.33.0")


def test_every_engine_release_has_a_schema_and_each_schema_a_release() -> None:
    """The version list is the release profiles; each has its flag schema, and back."""
    assert set(releases()) == {"vllm", "sglang"}
    for engine, by_version in releases().items():
        assert set(by_version) == set(known_versions(engine))


def test_known_versions_keep_engines_apart() -> None:
    # `vllm-router-0.1.17.json` must not count as a version of `vllm`.
    assert known_versions("vllm") == ("0.32.0", "0.33.0")
    assert known_versions("sglang") == ("0.5.19", "0.5.21", "0.5.22", "0.5.23")
    assert known_versions("vllm-router") == ("0.1.17",)


def test_unknown_version_names_the_known_ones() -> None:
    with pytest.raises(FlagError) as caught:
        load_schema("vllm", "0.31.0")
    assert str(caught.value) == (
        "no flag schema for vllm 0.31.0; known vllm versions: 0.32.0, 0.33.0 "
        "(add one with scripts/gen_flag_schemas.py)"
    )


def test_facts_read_from_the_real_parsers() -> None:
    vllm = load_schema("vllm", "0.33.0")
    assert vllm.positionals == (("model_tag", "?"),)
    assert {"underscore_dashes", "dotted_json_keys"} <= vllm.features
    tp = vllm.by_flag["-tp"]
    assert tp.canonical == "--tensor-parallel-size" and tp.nargs is None
    log_requests = vllm.by_flag["--disable-log-requests"]
    assert log_requests.flags == ("--enable-log-requests", "--disable-log-requests")
    assert log_requests.hidden_flags == ("--no-enable-log-requests",)
    assert set(log_requests.negative_flags) == {
        "--disable-log-requests",
        "--no-enable-log-requests",
    }
    assert vllm.by_flag["--kv-transfer-config"].json == "object"
    assert vllm.by_flag["--kv-cache-dtype"].choices is None  # a free string in 0.33
    assert load_schema("vllm", "0.32.0").by_flag["--kv-cache-dtype"].choices is not None

    sglang = load_schema("sglang", "0.5.23")
    assert sglang.positionals == ()
    assert sglang.by_flag["--model"].canonical == "--model-path"
    assert sglang.by_flag["--model-path"].required
    assert sglang.by_flag["--ep"].canonical == "--ep-size"
    assert sglang.by_flag["--enable-dp-attention"].deprecated
    assert "fp4_e2m1" not in (sglang.by_flag["--kv-cache-dtype"].choices or ())
    assert "bf16" in (sglang.by_flag["--kv-cache-dtype"].choices or ())


def test_versions_accepting() -> None:
    assert versions_accepting("vllm", "--disable-log-requests") == ["0.33.0"]
    assert versions_accepting("vllm", "--no-enable-log-requests") == ["0.32.0", "0.33.0"]
    assert versions_accepting("vllm", "--disable_log_requests=1") == ["0.33.0"]
    assert versions_accepting("sglang", "--attn-dp-size") == ["0.5.22", "0.5.23"]
    assert versions_accepting("sglang", "--cuda-graph-tc-compiler") == ["0.5.19", "0.5.21"]
    assert versions_accepting("sglang", "--speculative-skip-dp-mlp-sync") == [
        "0.5.19",
        "0.5.21",
        "0.5.22",
    ]
    assert versions_accepting("sglang", "--no-such-flag") == []


def test_accepts_answers_for_one_version() -> None:
    assert accepts("vllm", "0.33.0", "--disable-prefix-caching")
    assert not accepts("vllm", "0.32.0", "--disable-prefix-caching")
    assert accepts("vllm", "0.32.0", "--no-enable-prefix-caching=")
    assert accepts("sglang", "0.5.23", "--enable-hicache")
    assert not accepts("sglang", "0.5.22", "--enable-hicache")
