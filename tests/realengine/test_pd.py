"""Prefill/decode disaggregation on the real CPU engine: a prefill and a decode engine with
vLLM's NixlConnector (NIXL over TCP, no GPU), behind the vllm-router `deploy` renders for PD
(run from the simulator image, which implements vllm-router's PD protocol: prefill with
max_tokens 1 and `do_remote_decode`, then decode with the prefill's `kv_transfer_params`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SIDE_CHANNEL_PORT = "5600"


def _nixl(role: str) -> str:
    config = {"kv_connector": "NixlConnector", "kv_role": role, "kv_load_failure_policy": "fail"}
    return json.dumps(config, separators=(",", ":"))


def test_prefill_decode_with_nixl_over_tcp_behind_the_router(engines: Any) -> None:
    network = engines.network()
    sides = {}
    for role, kv_role, cores in (("prefill", "kv_producer", "0"), ("decode", "kv_consumer", "1")):
        serve = engines.serve_argv(
            "--max-model-len", "2048", "--kv-transfer-config", _nixl(kv_role)
        )
        # deploy renders the node's address; the side channel binds it.
        sides[role] = engines.start(
            engines.own_address(serve),
            role=role,
            network=network,
            threads_bind=cores,
            env={
                "VLLM_NIXL_SIDE_CHANNEL_HOST": engines.SELF,
                "VLLM_NIXL_SIDE_CHANNEL_PORT": SIDE_CHANNEL_PORT,
                "UCX_NET_DEVICES": "all",
                "UCX_TLS": "tcp",
            },
        )
    for role, engine in sides.items():
        engine.wait_ready(label=f"PD {role} (NIXL)")
    router = engines.start_router(
        [
            "vllm-router", "--vllm-pd-disaggregation",
            "--prefill", f"http://{sides['prefill'].name}:8000",
            "--decode", f"http://{sides['decode'].name}:8000",
            "--host", "0.0.0.0", "--port", "8000",
        ],
        network=network,
    )  # fmt: skip
    router.wait_ready(deadline_s=120, label="PD router")

    prompt = " ".join(["the scheduler batches requests across ranks and nodes"] * 40)
    answer = router.post(
        "/v1/completions",
        {"model": "tiny", "prompt": prompt, "max_tokens": 8, "ignore_eos": True},
    )
    assert answer["usage"]["completion_tokens"] == 8
    prompt_tokens = answer["usage"]["prompt_tokens"]
    assert prompt_tokens > 300

    decode, prefill = sides["decode"], sides["prefill"]
    # The prefill engine computed the prompt once (for one token); the decode engine took the
    # prompt's KV blocks from the transfer instead of computing them.
    transferred = decode.metric("vllm:prompt_tokens_by_source_total", source="external_kv_transfer")
    assert transferred >= prompt_tokens - 16 * 2, decode.logs()[-3000:]
    assert prefill.metric("vllm:prompt_tokens_by_source_total", source="local_compute") >= (
        prompt_tokens - 16
    )
    # Streamed through the router as well.
    events = router.stream(
        "/v1/chat/completions",
        {"model": "tiny", "messages": [{"role": "user", "content": prompt}], "max_tokens": 4,
         "ignore_eos": True},
    )  # fmt: skip
    assert events
