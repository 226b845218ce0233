"""The simulator counts prompt tokens by source as vLLM does: a decode instance handed the
prefill's KV (`kv_transfer_params.do_remote_prefill`) does not prefill the prompt again."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


def _sources(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    pattern = r'vllm:prompt_tokens_by_source_total\{[^}]*source="(\w+)"\} (\d+)'
    return {source: int(value) for source, value in re.findall(pattern, text)}


def test_decode_with_transferred_kv_computes_only_the_last_prompt_token(
    spawn: Any, client: Any
) -> None:
    port = client.free_port()
    spawn(
        ["vllm", "serve", "m", "--host", "127.0.0.1", "--port", str(port)],
        {"DEPLOY_SIM_LOAD_SECONDS": "0", "DEPLOY_SIM_TTFT_MS": "1", "DEPLOY_SIM_TPOT_MS": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    assert client.wait_for(lambda: not client.connection_refused(url), timeout=60)
    plain = _post(f"{url}/v1/completions", {"model": "m", "prompt": "a b c d e f", "max_tokens": 1})
    prompt = plain["usage"]["prompt_tokens"]
    assert _sources(url) == {
        "local_compute": prompt,
        "local_cache_hit": 0,
        "external_kv_transfer": 0,
    }
    transfer = {"do_remote_prefill": True, "remote_engine_id": "p", "remote_block_ids": [0]}
    _post(
        f"{url}/v1/completions",
        {"model": "m", "prompt": "a b c d e f", "max_tokens": 1, "kv_transfer_params": transfer},
    )
    assert _sources(url) == {
        "local_compute": prompt + 1,
        "local_cache_hit": 0,
        "external_kv_transfer": prompt - 1,
    }
