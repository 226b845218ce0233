"""Engine counters and their Prometheus text, under vLLM's or SGLang's metric names."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.sim.settings import EngineName

# Bucket bounds as the engines declare them (vLLM's; SGLang's are close enough for a client).
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
ITL_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
E2E_BUCKETS = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)
TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)


@dataclass
class Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.bounds, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out = []
        cumulative = 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            cumulative += count
            out.append(f'{name}_bucket{{{labels},le="{float(bound)}"}} {float(cumulative)}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {float(self.count)}')
        out.append(f"{name}_count{{{labels}}} {float(self.count)}")
        out.append(f"{name}_sum{{{labels}}} {self.total}")
        return out


@dataclass
class EngineMetrics:
    """What a scheduler would count; updated by the request handlers."""

    kv_capacity_tokens: int
    running: int = 0
    waiting: int = 0
    kv_tokens_in_use: int = 0
    prompt_tokens: int = 0
    # vLLM's vllm:prompt_tokens_by_source: where each prompt token's KV came from. A PD decode
    # instance receives the prompt's KV from its prefill instance ("external_kv_transfer").
    prompt_by_source: dict[str, int] = field(
        default_factory=lambda: {
            "local_compute": 0,
            "local_cache_hit": 0,
            "external_kv_transfer": 0,
        }
    )
    generation_tokens: int = 0
    finished: dict[str, int] = field(default_factory=lambda: {"length": 0, "stop": 0, "abort": 0})
    ttft: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    itl: Histogram = field(default_factory=lambda: Histogram(ITL_BUCKETS))
    e2e: Histogram = field(default_factory=lambda: Histogram(E2E_BUCKETS))
    queue_time: Histogram = field(default_factory=lambda: Histogram(E2E_BUCKETS))
    prompt_len: Histogram = field(default_factory=lambda: Histogram(TOKEN_BUCKETS))
    generation_len: Histogram = field(default_factory=lambda: Histogram(TOKEN_BUCKETS))

    @property
    def kv_usage(self) -> float:
        return min(1.0, self.kv_tokens_in_use / max(1, self.kv_capacity_tokens))

    def render(self, engine: EngineName, model: str) -> str:
        if engine == "vllm":
            return self._render_vllm(model)
        return self._render_sglang(model)

    def _render_vllm(self, model: str) -> str:
        labels = f'engine="0",model_name="{_escape(model)}"'
        lines: list[str] = []
        gauge = _family(lines, "gauge", labels)
        counter = _family(lines, "counter", labels)
        gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            self.running,
        )
        gauge(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed.", self.waiting
        )
        gauge(
            "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", self.kv_usage
        )
        counter("vllm:num_preemptions_total", "Cumulative number of preemption from the engine.", 0)
        counter(
            "vllm:prefix_cache_queries_total",
            "Prefix cache queries, in terms of number of queried tokens.",
            self.prompt_tokens,
        )
        counter(
            "vllm:prefix_cache_hits_total",
            "Prefix cache hits, in terms of number of cached tokens.",
            0,
        )
        counter(
            "vllm:prompt_tokens_total", "Number of prefill tokens processed.", self.prompt_tokens
        )
        counter(
            "vllm:generation_tokens_total",
            "Number of generation tokens processed.",
            self.generation_tokens,
        )
        lines.append("# HELP vllm:prompt_tokens_by_source_total Number of prompt tokens by source.")
        lines.append("# TYPE vllm:prompt_tokens_by_source_total counter")
        for source, count in self.prompt_by_source.items():
            lines.append(
                f'vllm:prompt_tokens_by_source_total{{{labels},source="{source}"}} {count}'
            )
        lines.append("# HELP vllm:request_success_total Count of successfully processed requests.")
        lines.append("# TYPE vllm:request_success_total counter")
        for reason, count in self.finished.items():
            lines.append(
                f'vllm:request_success_total{{{labels},finished_reason="{reason}"}} {float(count)}'
            )
        histograms = (
            (
                "vllm:time_to_first_token_seconds",
                "Histogram of time to first token in seconds.",
                self.ttft,
            ),
            (
                "vllm:inter_token_latency_seconds",
                "Histogram of inter-token latency in seconds.",
                self.itl,
            ),
            (
                "vllm:request_time_per_output_token_seconds",
                "Histogram of time_per_output_token_seconds per request.",
                self.itl,
            ),
            (
                "vllm:e2e_request_latency_seconds",
                "Histogram of e2e request latency in seconds.",
                self.e2e,
            ),
            (
                "vllm:request_queue_time_seconds",
                "Histogram of time spent in WAITING phase for request.",
                self.queue_time,
            ),
            ("vllm:request_prompt_tokens", "Number of prefill tokens processed.", self.prompt_len),
            (
                "vllm:request_generation_tokens",
                "Number of generation tokens processed.",
                self.generation_len,
            ),
        )
        for name, help_text, histogram in histograms:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} histogram")
            lines.extend(histogram.lines(name, labels))
        return "\n".join(lines) + "\n"

    def _render_sglang(self, model: str) -> str:
        labels = f'model_name="{_escape(model)}",engine_type="unified",tp_rank="0",pp_rank="0"'
        lines: list[str] = []
        gauge = _family(lines, "gauge", labels)
        counter = _family(lines, "counter", labels)
        gauge("sglang:num_running_reqs", "The number of running requests.", self.running)
        gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue.", self.waiting)
        gauge("sglang:num_used_tokens", "The number of used tokens.", self.kv_tokens_in_use)
        gauge("sglang:token_usage", "The token usage.", self.kv_usage)
        gauge(
            "sglang:max_total_num_tokens",
            "Maximum total number of tokens in the KV cache pool.",
            self.kv_capacity_tokens,
        )
        gauge("sglang:cache_hit_rate", "The prefix cache hit rate.", 0.0)
        counter(
            "sglang:prompt_tokens_total", "Number of prefill tokens processed.", self.prompt_tokens
        )
        counter(
            "sglang:generation_tokens_total",
            "Number of generation tokens processed.",
            self.generation_tokens,
        )
        counter(
            "sglang:num_requests_total",
            "Number of requests processed.",
            sum(self.finished.values()),
        )
        counter(
            "sglang:num_aborted_requests_total",
            "Number of requests aborted.",
            self.finished["abort"],
        )
        histograms = (
            (
                "sglang:time_to_first_token_seconds",
                "Histogram of time to first token in seconds.",
                self.ttft,
            ),
            (
                "sglang:inter_token_latency_seconds",
                "Histogram of inter-token latency in seconds.",
                self.itl,
            ),
            (
                "sglang:e2e_request_latency_seconds",
                "Histogram of End-to-end request latency in seconds",
                self.e2e,
            ),
            (
                "sglang:queue_time_seconds",
                "Histogram of queueing time in seconds.",
                self.queue_time,
            ),
        )
        for name, help_text, histogram in histograms:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} histogram")
            lines.extend(histogram.lines(name, labels))
        return "\n".join(lines) + "\n"


def _family(lines: list[str], kind: str, labels: str) -> Callable[[str, str, float], None]:
    def add(name: str, help_text: str, value: float) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name}{{{labels}}} {float(value)}")

    return add


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
