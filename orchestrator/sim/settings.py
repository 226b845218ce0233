"""What a simulated program is (from its command line) and how it behaves (from the environment).

The program side comes from the real engine command line (see `argv.py`); the behaviour side
comes from `DEPLOY_SIM_*` environment variables, which the supervisor sets in `--simulate`
mode, or from keyword arguments in tests. Only the standard library is used here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

EngineName = Literal["vllm", "sglang"]
RouterFlavour = Literal["vllm-router", "sglang-router", "smg"]

VLLM_VERSION = "0.33.0"
SGLANG_VERSION = "0.5.23"

# Loading time derived from the weights' size: 2 s per 100 GiB, kept small so that rehearsals
# and tests of big models stay quick, and never zero so that "refused while loading" is visible.
LOAD_SECONDS_PER_GIB = 0.02
LOAD_SECONDS_MIN = 0.5
LOAD_SECONDS_MAX = 6.0
DEFAULT_LOAD_SECONDS = 2.0
DEFAULT_SGLANG_WARMUP_SECONDS = 1.0
DEFAULT_TTFT_MS = 50.0
DEFAULT_TPOT_MS = 10.0
# Without `ignore_eos` the simulated model "emits EOS" after this many tokens.
DEFAULT_EOS_TOKENS = 128
DEFAULT_KV_CAPACITY_TOKENS = 262144


class SimConfigError(ValueError):
    """A command line or a DEPLOY_SIM_* value the simulator cannot use."""


@dataclass(frozen=True)
class Faults:
    """Failures to inject. Times are seconds since the program started."""

    crash_after: float | None = None
    hang_after: float | None = None
    never_ready: bool = False
    exit_on_start: bool = False
    fail: str | None = None  # a start failure of `orchestrator.sim.start_failures`

    @classmethod
    def parse(cls, text: str | None) -> Faults:
        """Parse `crash-after=S`, `hang`, `hang-after=S`, `never-ready`, `exit-on-start`.

        Several faults may be given separated by commas; an empty text means none.
        """
        crash_after: float | None = None
        hang_after: float | None = None
        never_ready = False
        exit_on_start = False
        fail: str | None = None
        for raw in (text or "").split(","):
            item = raw.strip()
            if not item or item == "none":
                continue
            name, _, value = item.partition("=")
            if name == "crash-after":
                crash_after = _seconds(value, item)
            elif name == "hang-after":
                hang_after = _seconds(value, item)
            elif name == "hang" and not value:
                hang_after = 0.0
            elif name == "never-ready" and not value:
                never_ready = True
            elif name == "exit-on-start" and not value:
                exit_on_start = True
            elif name == "fail":
                from orchestrator.sim.start_failures import CAUSES

                if value not in CAUSES:
                    raise SimConfigError(
                        f"unknown start failure '{value}'; use fail= one of {', '.join(CAUSES)}"
                    )
                fail = value
            else:
                raise SimConfigError(
                    f"unknown simulator fault '{item}'; use crash-after=SECONDS, hang, "
                    "hang-after=SECONDS, never-ready, exit-on-start or fail=CAUSE"
                )
        return cls(crash_after, hang_after, never_ready, exit_on_start, fail)

    def describe(self) -> str:
        parts = []
        if self.crash_after is not None:
            parts.append(f"crash-after={self.crash_after:g}")
        if self.hang_after is not None:
            parts.append("hang" if self.hang_after == 0 else f"hang-after={self.hang_after:g}")
        if self.never_ready:
            parts.append("never-ready")
        if self.exit_on_start:
            parts.append("exit-on-start")
        if self.fail:
            parts.append(f"fail={self.fail}")
        return ",".join(parts) or "none"


def _seconds(value: str, item: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise SimConfigError(
            f"fault '{item}' needs a number of seconds, e.g. crash-after=5"
        ) from None
    if seconds < 0 or math.isnan(seconds):
        raise SimConfigError(f"fault '{item}' needs a non-negative number of seconds")
    return seconds


@dataclass(frozen=True)
class Behaviour:
    """Timing and failure knobs shared by every simulated program."""

    load_seconds: float = 0.0
    warmup_seconds: float = 0.0
    ttft_ms: float = DEFAULT_TTFT_MS
    tpot_ms: float = DEFAULT_TPOT_MS
    faults: Faults = field(default_factory=Faults)
    weights_gib: float | None = None
    max_concurrency: int | None = None
    eos_tokens: int = DEFAULT_EOS_TOKENS
    kv_capacity_tokens: int = DEFAULT_KV_CAPACITY_TOKENS

    @classmethod
    def from_env(cls, env: Mapping[str, str], engine: EngineName | None = None) -> Behaviour:
        """Read the `DEPLOY_SIM_*` variables; unset ones take engine-like defaults."""
        weights = _env_float(env, "DEPLOY_SIM_WEIGHTS_GIB")
        load = _env_float(env, "DEPLOY_SIM_LOAD_SECONDS")
        if load is None:
            load = default_load_seconds(weights)
        warmup = _env_float(env, "DEPLOY_SIM_WARMUP_SECONDS")
        if warmup is None:
            warmup = DEFAULT_SGLANG_WARMUP_SECONDS if engine == "sglang" else 0.0
        ttft = _env_float(env, "DEPLOY_SIM_TTFT_MS")
        tpot = _env_float(env, "DEPLOY_SIM_TPOT_MS")
        concurrency = _env_int(env, "DEPLOY_SIM_MAX_CONCURRENCY")
        eos = _env_int(env, "DEPLOY_SIM_EOS_TOKENS")
        kv = _env_int(env, "DEPLOY_SIM_KV_TOKENS")
        return cls(
            load_seconds=load,
            warmup_seconds=warmup,
            ttft_ms=DEFAULT_TTFT_MS if ttft is None else ttft,
            tpot_ms=DEFAULT_TPOT_MS if tpot is None else tpot,
            faults=Faults.parse(env.get("DEPLOY_SIM_FAULT")),
            weights_gib=weights,
            max_concurrency=concurrency if concurrency else None,
            eos_tokens=DEFAULT_EOS_TOKENS if eos is None else max(1, eos),
            kv_capacity_tokens=kv or DEFAULT_KV_CAPACITY_TOKENS,
        )


def default_load_seconds(weights_gib: float | None) -> float:
    """Loading time for weights of this size (2 s per 100 GiB, within 0.5 to 6 s)."""
    if weights_gib is None:
        return DEFAULT_LOAD_SECONDS
    return min(LOAD_SECONDS_MAX, max(LOAD_SECONDS_MIN, weights_gib * LOAD_SECONDS_PER_GIB))


def _env_float(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise SimConfigError(f"{name}={raw!r} is not a number") from None
    if value < 0 or math.isnan(value):
        raise SimConfigError(f"{name}={raw!r} must not be negative")
    return value


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = _env_float(env, name)
    return None if value is None else int(value)


@dataclass(frozen=True)
class EngineSettings:
    """An engine server as its command line describes it."""

    engine: EngineName
    model: str
    served_model_names: tuple[str, ...]
    host: str
    port: int
    api_key: str | None = None
    headless: bool = False
    enable_metrics: bool = True
    disaggregation_mode: str | None = None
    bootstrap_port: int = 8998
    max_model_len: int = 32768
    max_concurrency: int | None = None
    skip_warmup: bool = False
    access_log: bool = True
    server_args: Mapping[str, object] = field(default_factory=dict)
    # Rank 0 of a multi-node instance: the port its peers rendezvous on (and health-check).
    rendezvous_port: int | None = None
    # vLLM's DP RPC port serves the start-up handshake only and closes after it.
    rendezvous_closes: bool = False
    # A follower: rank 0's rendezvous endpoint, which it connects to (and holds, for a store).
    leader: tuple[str, int] | None = None
    dp_local: int = 1  # engine-core processes behind this API server

    @property
    def http(self) -> bool:
        return not self.headless

    @property
    def version(self) -> str:
        return VLLM_VERSION if self.engine == "vllm" else SGLANG_VERSION


@dataclass(frozen=True)
class PrefillTarget:
    url: str
    bootstrap_port: int | None


@dataclass(frozen=True)
class RouterSettings:
    """A router or gateway in front of engine servers."""

    flavour: RouterFlavour
    host: str
    port: int
    prefill: tuple[PrefillTarget, ...] = ()
    decode: tuple[str, ...] = ()
    workers: tuple[str, ...] = ()

    @property
    def pd(self) -> bool:
        return bool(self.prefill or self.decode)


@dataclass(frozen=True)
class Upstream:
    name: str
    servers: tuple[str, ...]  # host:port
    least_conn: bool


@dataclass(frozen=True)
class Location:
    prefix: str
    exact: bool = False
    proxy_to: str | None = None  # an upstream name or host:port
    proxy_path: str | None = None  # the URI part of proxy_pass, if any
    return_status: int | None = None
    return_text: str = ""


@dataclass(frozen=True)
class VirtualServer:
    host: str
    port: int
    locations: tuple[Location, ...]


@dataclass(frozen=True)
class NginxSettings:
    config_file: str
    servers: tuple[VirtualServer, ...]
    upstreams: Mapping[str, Upstream]


Program = EngineSettings | RouterSettings | NginxSettings
