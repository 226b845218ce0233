"""check_argv against the committed schemas: real launch commands pass, mistakes are named."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import pytest

from orchestrator.engines.flags import CheckedArgv

Accept = Callable[[str, str, Sequence[str]], CheckedArgv]
Reject = Callable[[str, str, Sequence[str]], str]

NIXL_PRODUCER = json.dumps(
    {"kv_connector": "NixlConnector", "kv_role": "kv_producer", "kv_load_failure_policy": "fail"}
)
LMCACHE_PRODUCER = json.dumps(
    {
        "kv_connector": "LMCacheConnectorV1",
        "kv_role": "kv_producer",
        "kv_connector_extra_config": {"discard_partial_chunks": False, "lmcache_rpc_port": "p1"},
    }
)

# Launch commands from the engines' docs (engines.md §2, §3), as argv after the entry point.
VLLM_COMMANDS = {
    "tp-pp-two-nodes-head": [
        "/models/llama",
        "--tensor-parallel-size",
        "8",
        "--pipeline-parallel-size",
        "2",
        "--nnodes",
        "2",
        "--node-rank",
        "0",
        "--master-addr",
        "10.0.0.1",
    ],
    "tp-pp-two-nodes-worker": [
        "/models/llama",
        "--tensor-parallel-size",
        "8",
        "--pipeline-parallel-size",
        "2",
        "--nnodes",
        "2",
        "--node-rank",
        "1",
        "--master-addr",
        "10.0.0.1",
        "--headless",
    ],
    "ray": ["/models/llama", "-tp", "8", "-pp", "2", "--distributed-executor-backend", "ray"],
    "dp-head": [
        "Qwen/Qwen3-30B-A3B",
        "--data-parallel-size",
        "4",
        "--data-parallel-size-local",
        "2",
        "--data-parallel-address",
        "10.99.48.128",
        "--data-parallel-rpc-port",
        "13345",
    ],
    "dp-headless": [
        "Qwen/Qwen3-30B-A3B",
        "--headless",
        "--data-parallel-size",
        "4",
        "--data-parallel-size-local",
        "2",
        "--data-parallel-start-rank",
        "2",
        "--data-parallel-address",
        "10.99.48.128",
        "--data-parallel-rpc-port",
        "13345",
    ],
    "wide-ep-node1": [
        "deepseek-ai/DeepSeek-V3",
        "--all2all-backend",
        "deepep_low_latency",
        "--tensor-parallel-size",
        "1",
        "--enable-expert-parallel",
        "--data-parallel-size",
        "16",
        "--data-parallel-size-local",
        "8",
        "--data-parallel-address",
        "192.168.1.100",
        "--data-parallel-rpc-port",
        "13345",
        "--api-server-count=8",
    ],
    "external-lb-rank": [
        "deepseek-ai/DeepSeek-V3",
        "--data-parallel-size",
        "2",
        "--data-parallel-rank",
        "1",
        "--data-parallel-address",
        "10.99.48.128",
        "--data-parallel-rpc-port",
        "13345",
        "--port",
        "8001",
    ],
    "pd-nixl-prefill": [
        "Qwen/Qwen3-0.6B",
        "--port",
        "8100",
        "--enforce-eager",
        "--kv-transfer-config",
        NIXL_PRODUCER,
    ],
    "pd-lmcache-prefill": [
        "Qwen/Qwen3-0.6B",
        "--port",
        "8100",
        "--enforce-eager",
        "--kv-transfer-config",
        LMCACHE_PRODUCER,
    ],
    "served-name-and-memory": [
        "/models/qwen",
        "--served-model-name",
        "qwen",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--gpu-memory-utilization",
        "0.9",
        "--max-model-len",
        "32768",
        "--dtype",
        "bfloat16",
        "--trust-remote-code",
        "--no-enable-log-requests",
    ],
}

SGLANG_COMMANDS = {
    "two-nodes-rank0": [
        "--model-path",
        "meta-llama/Meta-Llama-3.1-405B-Instruct",
        "--tp-size",
        "16",
        "--dist-init-addr",
        "172.16.4.52:20000",
        "--nnodes",
        "2",
        "--node-rank",
        "0",
    ],
    "k8s-statefulset": [
        "--model",
        "/llm-folder",
        "--dist-init-addr",
        "sglang-master-pod:5000",
        "--tensor-parallel-size",
        "16",
        "--nnodes",
        "2",
        "--node-rank",
        "1",
        "--trust-remote-code",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--enable-metrics",
        "--expert-parallel-size",
        "16",
    ],
    "ep-deepep": [
        "--model-path",
        "deepseek-ai/DeepSeek-V3",
        "--moe-a2a-backend",
        "deepep",
        "--moe-runner-backend",
        "deep_gemm",
        "--tp-size",
        "8",
        "--ep",
        "8",
    ],
    "pd-prefill": [
        "--model-path",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--disaggregation-mode",
        "prefill",
        "--port",
        "30000",
        "--disaggregation-ib-device",
        "mlx5_roce0",
    ],
    "pd-decode-nixl": [
        "--model-path",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--disaggregation-mode",
        "decode",
        "--port",
        "30001",
        "--base-gpu-id",
        "1",
        "--disaggregation-transfer-backend",
        "nixl",
    ],
    "quantised-fp8-kv": [
        "--model-path",
        "Qwen/Qwen3-8B",
        "--quantization",
        "fp8",
        "--kv-cache-dtype",
        "fp8_e4m3",
        "--mem-fraction-static",
        "0.85",
        "--context-length",
        "32768",
        "--host",
        "0.0.0.0",
    ],
}

# Attention DP as SGLang 0.5.22+ spells it (engines.md §3.1, DeepSeek prefill node 0).
SGLANG_ATTN_DP = [
    "--model-path",
    "deepseek-ai/DeepSeek-V3-0324",
    "--disaggregation-ib-device",
    "mlx5_0",
    "--disaggregation-mode",
    "prefill",
    "--host",
    "10.0.0.1",
    "--port",
    "30000",
    "--trust-remote-code",
    "--dist-init-addr",
    "10.0.0.1:5000",
    "--nnodes",
    "2",
    "--node-rank",
    "0",
    "--tp-size",
    "16",
    "--attn-dp-size",
    "8",
    "--moe-a2a-backend",
    "deepep",
    "--mem-fraction-static",
    "0.8",
]

ROUTER_COMMANDS = [
    (
        "sglang-router",
        "0.3.2",
        [
            "--pd-disaggregation",
            "--mini-lb",
            "--prefill",
            "http://10.0.0.1:30000",
            "--decode",
            "http://10.0.0.2:30001",
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
        ],
    ),
    (
        "sglang-router",
        "0.3.2",
        [
            "--pd-disaggregation",
            "--prefill",
            "http://prefill1:30001",
            "9001",
            "--prefill",
            "http://prefill2:30001",
            "--decode",
            "http://decode1:30011",
            "--prefill-policy",
            "cache_aware",
            "--decode-policy",
            "power_of_two",
        ],
    ),
    (
        "smg",
        "1.13.0",
        [
            "--pd-disaggregation",
            "--prefill",
            "http://p:30000",
            "9000",
            "--decode",
            "http://d:30001",
            "--prefill-policy",
            "cache_aware",
            "--backend",
            "vllm",
        ],
    ),
    (
        "vllm-router",
        "0.1.17",
        [
            "--policy",
            "round_robin",
            "--vllm-pd-disaggregation",
            "--prefill",
            "http://p1:8001",
            "--decode",
            "http://d1:8002",
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
            "--intra-node-data-parallel-size",
            "2",
        ],
    ),
    (
        "vllm-router",
        "0.1.17",
        [
            "--vllm-pd-disaggregation",
            "--kv-connector",
            "moriio",
            "--vllm-discovery-address",
            "0.0.0.0:36367",
        ],
    ),
]


@pytest.mark.parametrize("version", ["0.33.0", "0.32.0"])
@pytest.mark.parametrize("name", sorted(VLLM_COMMANDS))
def test_vllm_commands_from_the_docs_pass(accepted: Accept, name: str, version: str) -> None:
    argv = VLLM_COMMANDS[name]
    result = accepted("vllm", version, argv)
    assert result.positionals == (argv[0],)
    assert all(item.flag.startswith("--") for item in result.flags)


@pytest.mark.parametrize("version", ["0.5.23", "0.5.22", "0.5.21"])
@pytest.mark.parametrize("name", sorted(SGLANG_COMMANDS))
def test_sglang_commands_from_the_docs_pass(accepted: Accept, name: str, version: str) -> None:
    result = accepted("sglang", version, SGLANG_COMMANDS[name])
    assert result.positionals == ()
    assert len(result.values("--model-path")) == 1


@pytest.mark.parametrize(("engine", "version", "argv"), ROUTER_COMMANDS)
def test_router_commands_pass(accepted: Accept, engine: str, version: str, argv: list[str]) -> None:
    result = accepted(engine, version, argv)
    assert [item.spelling for item in result.flags] == [arg for arg in argv if arg.startswith("--")]
    assert all(values[0].startswith("http://") for values in result.values("--prefill"))


def test_aliases_resolve_to_the_canonical_flag(accepted: Accept) -> None:
    result = accepted("sglang", "0.5.23", SGLANG_COMMANDS["k8s-statefulset"])
    assert result.values("--model-path") == [("/llm-folder",)]
    assert result.values("--tp-size") == [("16",)]
    assert result.values("--ep-size") == [("16",)]


def test_router_bootstrap_ports_are_values_of_prefill(accepted: Accept) -> None:
    result = accepted(*ROUTER_COMMANDS[1])
    assert result.values("--prefill") == [
        ("http://prefill1:30001", "9001"),
        ("http://prefill2:30001",),
    ]


# --- flags that exist only in part of the version window -----------------------------------


def test_disable_log_requests_exists_only_from_vllm_0_33(
    accepted: Accept, rejected: Reject
) -> None:
    accepted("vllm", "0.33.0", ["m", "--disable-log-requests"])
    assert rejected("vllm", "0.32.0", ["m", "--disable-log-requests"]) == (
        "--disable-log-requests is not a flag of vllm 0.32.0; it is accepted by vllm 0.33.0; "
        "use --no-enable-log-requests"
    )


def test_renamed_positive_spelling_is_suggested(rejected: Reject) -> None:
    # 0.33 turns --disable-cascade-attn off with --enable-cascade-attn; 0.32 with --no-...
    assert rejected("vllm", "0.32.0", ["m", "--enable-cascade-attn"]).endswith(
        "it is accepted by vllm 0.33.0; use --no-disable-cascade-attn"
    )


@pytest.mark.parametrize("version", ["0.5.23", "0.5.22"])
def test_attn_dp_size_is_accepted_from_sglang_0_5_22(accepted: Accept, version: str) -> None:
    assert accepted("sglang", version, SGLANG_ATTN_DP).values("--attn-dp-size") == [("8",)]


def test_attn_dp_size_is_rejected_by_sglang_0_5_21(rejected: Reject) -> None:
    assert rejected("sglang", "0.5.21", SGLANG_ATTN_DP) == (
        "--attn-dp-size is not a flag of sglang 0.5.21; it is accepted by sglang 0.5.22, 0.5.23"
    )


def test_old_dp_attention_form_parses_everywhere_but_is_deprecated(accepted: Accept) -> None:
    argv = ["--model-path", "m", "--tp-size", "8", "--dp-size", "8", "--enable-dp-attention"]
    assert accepted("sglang", "0.5.21", argv).deprecated == ()
    assert accepted("sglang", "0.5.23", argv).deprecated == ("--enable-dp-attention",)


def test_cuda_graph_flag_removed_after_sglang_0_5_21(accepted: Accept, rejected: Reject) -> None:
    argv = ["--model-path", "m", "--cuda-graph-tc-compiler", "eager"]
    accepted("sglang", "0.5.21", argv)
    for version in ("0.5.22", "0.5.23"):
        assert rejected("sglang", version, argv) == (
            f"--cuda-graph-tc-compiler is not a flag of sglang {version}; "
            "it is accepted by sglang 0.5.19, 0.5.21"
        )


# --- typos, abbreviations, values ----------------------------------------------------------


def test_typo_names_the_nearest_flag(rejected: Reject) -> None:
    assert rejected("vllm", "0.33.0", ["m", "--tensor-paralel-size", "2"]) == (
        "--tensor-paralel-size is not a flag of vllm 0.33.0; did you mean --tensor-parallel-size?"
    )
    assert rejected("sglang", "0.5.23", ["--model-path", "m", "--mem-fraction-statc", "0.8"]) == (
        "--mem-fraction-statc is not a flag of sglang 0.5.23; did you mean --mem-fraction-static?"
    )


def test_unique_prefix_is_refused_with_the_full_name(rejected: Reject) -> None:
    assert rejected("sglang", "0.5.23", ["--model-path", "m", "--tp", "8"]) == (
        "--tp is an abbreviation in a sglang 0.5.23 command line; write the full flag --tp-size"
    )


def test_ambiguous_prefix_lists_the_candidates(rejected: Reject) -> None:
    assert rejected("sglang", "0.5.23", ["--model-path", "m", "--pp", "2"]) == (
        "--pp is an ambiguous abbreviation for sglang 0.5.23; write one full flag: "
        "--pp-async-batch-depth, --pp-max-micro-batch-size, --pp-size"
    )


def test_unknown_router_flag(rejected: Reject) -> None:
    text = rejected("smg", "1.13.0", ["--pd-disaggregation", "--mini-lb"])
    assert text.startswith("--mini-lb is not a flag of smg 1.13.0")


@pytest.mark.parametrize("version", ["0.5.23", "0.5.22", "0.5.21"])
def test_sglang_choices_are_enforced(rejected: Reject, version: str) -> None:
    text = rejected("sglang", version, ["--model-path", "m", "--quantization", "fp9"])
    assert text.startswith(
        f"--quantization fp9 is not accepted by sglang {version}; did you mean fp8?"
    )
    assert "choices: awq, fp8," in text
    text = rejected("sglang", version, ["--model-path", "m", "--kv-cache-dtype", "fp4_e2m1"])
    assert text.startswith(f"--kv-cache-dtype fp4_e2m1 is not accepted by sglang {version}")


def test_vllm_kv_cache_dtype_choices_by_version(accepted: Accept, rejected: Reject) -> None:
    # A checked choice in 0.32; a free string (checked at engine start) in 0.33.
    assert rejected("vllm", "0.32.0", ["m", "--kv-cache-dtype", "fp9"]).startswith(
        "--kv-cache-dtype fp9 is not accepted by vllm 0.32.0"
    )
    accepted("vllm", "0.32.0", ["m", "--kv-cache-dtype", "fp8"])
    accepted("vllm", "0.33.0", ["m", "--kv-cache-dtype", "fp9"])


def test_integer_choices_compare_as_integers(accepted: Accept, rejected: Reject) -> None:
    accepted("sglang", "0.5.23", ["--model-path", "m", "--dsa-triton-union", "2"])
    assert rejected(
        "sglang", "0.5.23", ["--model-path", "m", "--dsa-triton-union", "3"]
    ).startswith("--dsa-triton-union 3 is not accepted by sglang 0.5.23")


def test_missing_values(rejected: Reject) -> None:
    assert rejected("sglang", "0.5.23", ["--model-path", "m", "--port"]) == (
        "--port of sglang 0.5.23 needs a value; "
        "write --port VALUE, or --port=VALUE for a value starting with '-'"
    )
    assert rejected("vllm", "0.33.0", ["m", "--port", "--host", "0.0.0.0"]).startswith(
        "--port of vllm 0.33.0 needs a value (next is --host)"
    )
    assert rejected("sglang-router", "0.3.2", ["--pd-disaggregation", "--prefill"]).startswith(
        "--prefill of sglang-router 0.3.2 needs at least one value"
    )


def test_negative_numbers_and_words_with_spaces_are_values(accepted: Accept) -> None:
    assert accepted("vllm", "0.33.0", ["m", "--seed", "-1"]).values("--seed") == [("-1",)]
    result = accepted("vllm", "0.33.0", ["m", "--chat-template", "-- a template --"])
    assert result.values("--chat-template") == [("-- a template --",)]


def test_boolean_takes_no_value(rejected: Reject) -> None:
    assert rejected("sglang", "0.5.23", ["--model-path", "m", "--enable-metrics=1"]) == (
        "--enable-metrics takes no value but was given --enable-metrics=1; write --enable-metrics alone"
    )


def test_boolean_followed_by_a_word_leaves_a_stray_argument(rejected: Reject) -> None:
    assert rejected("sglang", "0.5.23", ["--model-path", "m", "--enable-metrics", "true"]) == (
        "unexpected argument 'true' for sglang 0.5.23; it takes no positional arguments; "
        "pass the model as --model-path MODEL"
    )


def test_equals_form_and_repeats(accepted: Accept, rejected: Reject) -> None:
    accepted("sglang", "0.5.23", ["--model-path=m", "--tp-size=2"])
    assert rejected(
        "sglang", "0.5.23", ["--model-path", "m", "--tp-size", "2", "--tensor-parallel-size", "4"]
    ) == (
        "--tensor-parallel-size repeats --tp-size (same setting) in a sglang 0.5.23 command line; "
        "give each setting once"
    )
    assert rejected(
        "vllm", "0.33.0", ["m", "--enable-expert-parallel", "--disable-expert-parallel"]
    ).startswith("--disable-expert-parallel repeats --enable-expert-parallel")


# --- positionals and required flags ----------------------------------------------------------


def test_sglang_needs_model_path(rejected: Reject) -> None:
    assert rejected("sglang", "0.5.23", ["--tp-size", "2"]) == (
        "sglang 0.5.23 requires --model-path; add --model-path VALUE"
    )
    assert rejected("sglang", "0.5.23", ["Qwen/Qwen3-8B", "--tp-size", "2"]).startswith(
        "unexpected argument 'Qwen/Qwen3-8B' for sglang 0.5.23"
    )


def test_vllm_takes_one_positional_model(accepted: Accept, rejected: Reject) -> None:
    assert accepted("vllm", "0.33.0", []).positionals == ()
    assert accepted("vllm", "0.33.0", ["--port", "8000", "m"]).positionals == ("m",)
    assert rejected("vllm", "0.33.0", ["m", "n"]) == (
        "unexpected argument 'n' for vllm 0.33.0; it takes 1 positional argument(s): model_tag"
    )


def test_vllm_served_model_name_needs_the_model_first(accepted: Accept, rejected: Reject) -> None:
    assert rejected("vllm", "0.33.0", ["--served-model-name", "x", "m"]) == (
        "vllm 0.33.0 needs the model as the first argument when --served-model-name is given; "
        "put MODEL before the flags"
    )
    accepted("vllm", "0.33.0", ["m", "--served-model-name", "x"])
    accepted("vllm", "0.33.0", ["--model", "m", "--served-model-name", "x"])


# --- vLLM parser extras -----------------------------------------------------------------------


def test_vllm_underscores_and_short_aliases(accepted: Accept, rejected: Reject) -> None:
    result = accepted("vllm", "0.33.0", ["m", "--tensor_parallel_size", "2", "-dp", "2", "-O3"])
    assert [item.flag for item in result.flags] == [
        "--tensor-parallel-size",
        "--data-parallel-size",
        "--optimization-level",
    ]
    assert result.values("--optimization-level") == [("3",)]
    # SGLang's parser has no such translation.
    assert rejected("sglang", "0.5.23", ["--model-path", "m", "--tp_size", "2"]).startswith(
        "--tp_size is not a flag of sglang 0.5.23; did you mean --tp-size?"
    )


def test_vllm_dotted_json_sub_keys(accepted: Accept, rejected: Reject) -> None:
    result = accepted(
        "vllm",
        "0.33.0",
        [
            "m",
            "--kv-transfer-config.kv_connector",
            "NixlConnector",
            "--kv-transfer-config.kv_role=kv_consumer",
            "--kv-transfer-config.kv_connector_extra_config.backends+",
            "UCX",
        ],
    )
    assert result.values("--kv-transfer-config") == [("NixlConnector",), ("kv_consumer",), ("UCX",)]
    assert accepted("vllm", "0.33.0", ["m", "-cc.mode", "3"]).values("--compilation-config") == [
        ("3",)
    ]
    assert rejected("vllm", "0.33.0", ["m", "--port.x", "1"]) == (
        "--port.x: --port of vllm 0.33.0 is not a JSON config flag; pass --port VALUE"
    )
    assert rejected(
        "vllm",
        "0.33.0",
        ["m", "--kv-transfer-config", NIXL_PRODUCER, "--kv-transfer-config.kv_port", "1"],
    ).startswith("--kv-transfer-config is given both whole and as dotted sub-keys")
    assert rejected("vllm", "0.33.0", ["m", "--kv-transfer-confg.kv_role", "x"]).startswith(
        "--kv-transfer-confg is not a flag of vllm 0.33.0; did you mean --kv-transfer-config?"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{kv_connector: NixlConnector}", "needs a JSON object, got invalid JSON"),
        ('["NixlConnector"]', "needs a JSON object, got list"),
        ("NixlConnector", "needs a JSON object, got invalid JSON"),
    ],
)
def test_vllm_json_flags_need_objects(rejected: Reject, value: str, expected: str) -> None:
    text = rejected("vllm", "0.33.0", ["m", "--kv-transfer-config", value])
    assert text.startswith(f"--kv-transfer-config of vllm 0.33.0 {expected}")


def test_json_or_string_flags(accepted: Accept, rejected: Reject) -> None:
    accepted("vllm", "0.33.0", ["m", "--additional-config", '{"a": 1}'])
    accepted("vllm", "0.33.0", ["m", "--additional-config", "plain"])
    assert "needs a JSON object" in rejected(
        "vllm", "0.33.0", ["m", "--additional-config", "{oops"]
    )
