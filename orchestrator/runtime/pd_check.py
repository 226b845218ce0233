"""After a prefill/decode deployment is ready: one request through the router, then the
engines' own counters must show the prompt prefilled on a prefill instance and its KV moved
to the decode instance, not prefilled a second time there.

vLLM counts prompt tokens by where their KV came from, `vllm:prompt_tokens_by_source_total`
with `source="local_compute"`, `"local_cache_hit"` or `"external_kv_transfer"` (KV connector
transfers land in the last). SGLang exposes no such counter, so its PD deployments are
reported as not checked rather than passed.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.runtime.probes import service_url
from orchestrator.spec import ServiceSpec
from orchestrator.state import NodeInfo

_BY_SOURCE = re.compile(
    r'^vllm:prompt_tokens_by_source_total\{[^}]*source="(?P<source>[a-z_]+)"[^}]*\}\s+(?P<v>[\d.eE+]+)',
    re.MULTILINE,
)
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PROMPT = "Disaggregated serving check: " + "the quick brown fox jumps over the lazy dog " * 8


@dataclass(frozen=True)
class PdCheck:
    ok: bool | None  # None: not checked
    message: str


def _get(url: str, headers: Mapping[str, str], timeout: float = 10.0) -> bytes:
    request = urllib.request.Request(url, headers=dict(headers))
    with _DIRECT.open(request, timeout=timeout) as response:
        return bytes(response.read())


def _by_source(base: str) -> dict[str, float]:
    text = _get(f"{base}/metrics", {}).decode("utf-8", errors="replace")
    totals: dict[str, float] = {}
    for match in _BY_SOURCE.finditer(text):
        totals[match["source"]] = totals.get(match["source"], 0.0) + float(match["v"])
    return totals


def _totals(urls: list[str]) -> dict[str, float]:
    summed: dict[str, float] = {}
    for url in urls:
        for source, value in _by_source(url).items():
            summed[source] = summed.get(source, 0.0) + value
    return summed


def check_pd(
    specs: list[ServiceSpec], nodes: Mapping[str, NodeInfo], entry: str, api_key: str | None
) -> PdCheck | None:
    """None for a deployment without prefill and decode roles."""
    prefill = [s for s in specs if s.role == "prefill" and s.probe.kind == "http"]
    decode = [s for s in specs if s.role == "decode" and s.probe.kind == "http"]
    if not prefill or not decode:
        return None
    if any(s.entrypoint and "sglang" in " ".join(s.entrypoint + s.command) for s in decode):
        return PdCheck(None, "PD check skipped: SGLang exposes no KV-transfer token counter")

    def urls(group: list[ServiceSpec]) -> list[str]:
        found = [service_url(s, nodes[s.node]) for s in group if s.node in nodes]
        return [u for u in found if u is not None]

    prefill_urls, decode_urls = urls(prefill), urls(decode)
    headers = {"content-type": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    try:
        models = json.loads(_get(f"{entry}/v1/models", headers))
        model = models["data"][0]["id"]
        before_p, before_d = _totals(prefill_urls), _totals(decode_urls)
        body = json.dumps({"model": model, "prompt": PROMPT, "max_tokens": 2}).encode()
        request = urllib.request.Request(f"{entry}/v1/completions", data=body, headers=headers)
        with _DIRECT.open(request, timeout=60) as response:
            usage = json.loads(response.read()).get("usage", {})
        after_p, after_d = _totals(prefill_urls), _totals(decode_urls)
    except Exception as error:  # a check, not a start: report it, do not fail `up`
        return PdCheck(False, f"PD check could not run: {str(error)[:160]}")
    prompt = float(usage.get("prompt_tokens") or 0)
    prefilled = after_p.get("local_compute", 0.0) - before_p.get("local_compute", 0.0)
    moved = after_d.get("external_kv_transfer", 0.0) - before_d.get("external_kv_transfer", 0.0)
    again = after_d.get("local_compute", 0.0) - before_d.get("local_compute", 0.0)
    if not after_d and not after_p:
        return PdCheck(None, "PD check skipped: the engines expose no vllm:prompt_tokens_by_source")
    if prefilled > 0 and moved > 0 and again < max(2.0, prompt / 2):
        return PdCheck(
            True,
            f"PD check: {prefilled:.0f} prompt tokens prefilled on prefill, {moved:.0f} "
            f"transferred to decode, {again:.0f} recomputed there",
        )
    return PdCheck(
        False,
        f"warning: PD check failed: prefill computed {prefilled:.0f} prompt tokens, decode "
        f"received {moved:.0f} by KV transfer and computed {again:.0f} itself (of {prompt:.0f}); "
        "check the KV connector settings and the router's PD mode",
    )
