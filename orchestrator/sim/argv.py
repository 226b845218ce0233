"""Read a real engine, router or nginx command line into the program the simulator imitates.

Recognised programs (argv[0] may be a path; `python3 -m MODULE` works for the module forms):
- `vllm serve [MODEL] ...`, `python3 -m vllm.entrypoints.openai.api_server --model M ...`, and
  the arguments alone (`MODEL --flags` or `--flags`), as given to the vLLM image's entry point
- `sglang serve [MODEL] ...`, `python3 -m sglang.launch_server --model-path M ...`
- `vllm-router ...`, `python3 -m sglang_router.launch_router ...`, `smg launch ...`,
  `python3 -m smg.launch_router ...`: `--pd-disaggregation`/`--vllm-pd-disaggregation` with
  `--prefill URL [BOOTSTRAP_PORT]` and `--decode URL`, or `--worker-urls URL...`
- `nginx [-c FILE] [-g DIRECTIVES]`

Only the flags that decide where and as what the program listens are read; the others are
skipped (checking flags is not the simulator's job). Dashes and underscores are equivalent
and `--flag=value` works, as in the engines' parsers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator.sim.settings import (
    EngineSettings,
    NginxSettings,
    PrefillTarget,
    Program,
    RouterFlavour,
    RouterSettings,
    SimConfigError,
)

DEFAULT_VLLM_MODEL = "Qwen/Qwen3-0.6B"
DEFAULT_NGINX_CONFIG = "/etc/nginx/nginx.conf"

# Flags whose value is a list (argparse nargs="+"): every following non-flag token belongs to them.
_LIST_FLAGS = {"--served-model-name", "--worker-urls", "--api-key"}
# Flags we read that take no value.
_BOOL_FLAGS = {
    "--headless",
    "--enable-metrics",
    "--skip-server-warmup",
    "--disable-uvicorn-access-log",
    "--disable-log-requests",
    "--pd-disaggregation",
    "--vllm-pd-disaggregation",
    "--trust-remote-code",
    "--enforce-eager",
    "--enable-expert-parallel",
    "--mini-lb",
}


@dataclass
class _Parsed:
    values: dict[str, list[str]] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    positionals: list[str] = field(default_factory=list)
    prefill: list[PrefillTarget] = field(default_factory=list)

    def last(self, name: str) -> str | None:
        found = self.values.get(name)
        return found[-1] if found else None

    def every(self, name: str) -> list[str]:
        return self.values.get(name, [])


def _canonical(flag: str) -> str:
    return "--" + flag[2:].replace("_", "-") if flag.startswith("--") else flag


def _is_flag(token: str) -> bool:
    return token.startswith("-") and not _is_number(token)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _scan(tokens: Sequence[str]) -> _Parsed:
    """A forgiving argparse: unknown flags swallow one following non-flag token as their value."""
    parsed = _Parsed()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not _is_flag(token):
            parsed.positionals.append(token)
            continue
        name, eq, inline = token.partition("=")
        name = _canonical(name)
        if eq:
            parsed.values.setdefault(name, []).append(inline)
            continue
        if name in _BOOL_FLAGS:
            parsed.flags.add(name)
            continue
        if name == "--prefill":
            if i >= len(tokens) or _is_flag(tokens[i]):
                raise SimConfigError("--prefill needs a URL, e.g. --prefill http://host:30000")
            url = tokens[i]
            i += 1
            port: int | None = None
            if i < len(tokens) and not _is_flag(tokens[i]) and _port_or_none(tokens[i]) != -1:
                port = _port_or_none(tokens[i])
                i += 1
            parsed.prefill.append(PrefillTarget(url, port))
            continue
        if name in _LIST_FLAGS:
            items = []
            while i < len(tokens) and not _is_flag(tokens[i]):
                items.append(tokens[i])
                i += 1
            parsed.values.setdefault(name, []).extend(items)
            continue
        if i < len(tokens) and not _is_flag(tokens[i]):
            parsed.values.setdefault(name, []).append(tokens[i])
            i += 1
        else:
            parsed.flags.add(name)
    return parsed


def _port_or_none(token: str) -> int | None:
    """A bootstrap port after a prefill URL: a number, or `none`; -1 when it is neither."""
    if token.lower() == "none":
        return None
    try:
        return int(token)
    except ValueError:
        return -1


def _int(parsed: _Parsed, name: str, default: int) -> int:
    raw = parsed.last(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SimConfigError(f"{name} {raw!r} is not an integer") from None


def _port(parsed: _Parsed, name: str, default: int) -> int:
    # The socket layer takes a port modulo 65536, so 99999 would quietly serve on 34463.
    port = _int(parsed, name, default)
    if not 0 <= port <= 65535:
        raise SimConfigError(f"{name} {port} is not a TCP port (0 to 65535)")
    return port


def _split_program(argv: Sequence[str]) -> tuple[str, list[str]]:
    """Name the program: the basename of argv[0], or the module of `python -m MODULE`."""
    if not argv:
        raise SimConfigError(
            "no command given; pass the engine command line, e.g. vllm serve MODEL"
        )
    head = os.path.basename(argv[0])
    rest = list(argv[1:])
    if head.startswith("python"):
        if len(rest) >= 2 and rest[0] == "-m":
            return rest[1], rest[2:]
        if len(rest) >= 3 and rest[0] == "-c" and "runpy.run_module(sys.argv[0]" in rest[1]:
            # deploy's API-key wrapper: `python3 -c CODE MODULE ARGS` runs MODULE in-process
            # with the key from SGLANG_API_KEY appended to its arguments.
            return rest[2], rest[3:]
        raise SimConfigError(f"cannot simulate '{' '.join(argv[:3])}': expected python3 -m MODULE")
    return head, rest


def parse_command(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Program:
    """The program that `argv` (a real command line) would start."""
    env = os.environ if env is None else env
    if argv and _looks_like_vllm_image_arguments(argv[0]):
        # The vLLM image's entry point is `vllm serve`: a service that relies on it passes
        # only `MODEL --flags` (or only flags) as its command.
        return _vllm(list(argv), env, positional_allowed=True)
    program, rest = _split_program(argv)
    if program == "vllm":
        if not rest or rest[0] != "serve":
            raise SimConfigError("only 'vllm serve' is simulated")
        return _vllm(rest[1:], env, positional_allowed=True)
    if program in ("vllm.entrypoints.openai.api_server", "vllm.entrypoints.api_server"):
        return _vllm(rest, env, positional_allowed=False)
    if program == "sglang":
        if not rest or rest[0] != "serve":
            raise SimConfigError("only 'sglang serve' is simulated")
        return _sglang(rest[1:], positional_allowed=True)
    if program == "sglang.launch_server":
        if argv[1:2] == ["-c"] and env.get("SGLANG_API_KEY"):
            rest = [*rest, "--api-key", env["SGLANG_API_KEY"]]
        return _sglang(rest, positional_allowed=False)
    if program == "vllm-router":
        return _router("vllm-router", rest)
    if program in ("sglang_router.launch_router", "sglang_router.launch_server"):
        return _router("sglang-router", rest)
    if program == "smg":
        if not rest or rest[0] != "launch":
            raise SimConfigError(
                "smg needs the 'launch' subcommand: smg launch --pd-disaggregation ..."
            )
        return _router("smg", rest[1:])
    if program in ("smg.launch_router",):
        return _router("smg", rest)
    if program == "nginx":
        return _nginx(rest)
    raise SimConfigError(
        f"cannot simulate '{program}'; known programs: vllm serve, sglang serve, "
        "python3 -m sglang.launch_server, vllm-router, python3 -m sglang_router.launch_router, "
        "smg launch, nginx"
    )


def _looks_like_vllm_image_arguments(first: str) -> bool:
    if first.startswith("-"):
        return True
    known = ("vllm", "sglang", "vllm-router", "smg", "nginx")
    if os.path.basename(first) in known or os.path.basename(first).startswith("python"):
        return False
    # a Hugging Face id (org/name) or a model directory, not a program
    return "/" in first and not (os.path.isfile(first) and os.access(first, os.X_OK))


def _first_positional(tokens: Sequence[str]) -> str | None:
    # `vllm serve MODEL ...`: the model tag comes right after the subcommand.
    if tokens and not _is_flag(tokens[0]):
        return tokens[0]
    return None


def _vllm(tokens: list[str], env: Mapping[str, str], *, positional_allowed: bool) -> EngineSettings:
    parsed = _scan(tokens)
    model = (_first_positional(tokens) if positional_allowed else None) or parsed.last("--model")
    model = model or DEFAULT_VLLM_MODEL
    names = tuple(parsed.every("--served-model-name")) or (model,)
    keys = parsed.every("--api-key")
    api_key = keys[0] if keys else (env.get("VLLM_API_KEY") or None)
    concurrency = parsed.last("--max-num-seqs")
    return EngineSettings(
        engine="vllm",
        model=model,
        served_model_names=names,
        host=parsed.last("--host") or "0.0.0.0",
        port=_port(parsed, "--port", 8000),
        api_key=api_key,
        headless="--headless" in parsed.flags,
        enable_metrics=True,
        max_model_len=_int(parsed, "--max-model-len", 32768),
        max_concurrency=int(concurrency) if concurrency and concurrency.isdigit() else None,
        access_log="--disable-uvicorn-access-log" not in parsed.flags,
        server_args=_server_args(parsed, model, "model"),
        rendezvous_port=_vllm_rendezvous(parsed),
        rendezvous_closes=_vllm_rendezvous(parsed) is not None and _int(parsed, "--nnodes", 1) <= 1,
        leader=_vllm_leader(parsed),
        dp_local=_vllm_dp_local(parsed),
    )


def _vllm_leader(parsed: _Parsed) -> tuple[str, int] | None:
    """A headless rank's rank 0: the TCPStore (`--master-addr/--master-port`) or, for DP,
    the coordinator's handshake port (`--data-parallel-address/--data-parallel-rpc-port`)."""
    if "--headless" not in parsed.flags:
        return None
    if _int(parsed, "--nnodes", 1) > 1 and parsed.last("--master-addr"):
        return str(parsed.last("--master-addr")), _port(parsed, "--master-port", 29501)
    if parsed.last("--data-parallel-address"):
        address = str(parsed.last("--data-parallel-address"))
        return address, _port(parsed, "--data-parallel-rpc-port", 29550)
    return None


def _vllm_dp_local(parsed: _Parsed) -> int:
    for name in ("--data-parallel-size-local", "--data-parallel-size"):
        value = parsed.last(name)
        if value is not None and value.isdigit():
            return max(1, min(int(value), 64))
    return 1


def _vllm_rendezvous(parsed: _Parsed) -> int | None:
    """Rank 0 of a multi-node instance hosts the group's rendezvous: torch's TCPStore on
    `--master-port`, or the DP coordinator on `--data-parallel-rpc-port`."""
    if "--headless" in parsed.flags:
        return None
    if _int(parsed, "--nnodes", 1) > 1 and _int(parsed, "--node-rank", 0) == 0:
        return _port(parsed, "--master-port", 29501)
    if parsed.last("--data-parallel-address") and parsed.last("--data-parallel-size-local"):
        return _port(parsed, "--data-parallel-rpc-port", 29550)
    return None


def _sglang_rendezvous(parsed: _Parsed) -> int | None:
    """Rank 0 hosts torch's TCPStore at `--dist-init-addr` for the instance's lifetime."""
    address = parsed.last("--dist-init-addr")
    if not address or _int(parsed, "--nnodes", 1) <= 1 or _int(parsed, "--node-rank", 0) != 0:
        return None
    port = address.rpartition(":")[2]
    if not port.isdigit() or not 0 < int(port) <= 65535:
        raise SimConfigError(f"--dist-init-addr {address!r}: use HOST:PORT")
    return int(port)


def _sglang_leader(parsed: _Parsed) -> tuple[str, int] | None:
    """A rank >= 1 holds a connection to rank 0's TCPStore at `--dist-init-addr`."""
    address = parsed.last("--dist-init-addr")
    if not address or _int(parsed, "--node-rank", 0) < 1:
        return None
    host, _, port = address.rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() else None


def _sglang(tokens: list[str], *, positional_allowed: bool) -> EngineSettings:
    parsed = _scan(tokens)
    model = (_first_positional(tokens) if positional_allowed else None) or (
        parsed.last("--model-path") or parsed.last("--model")
    )
    if not model:
        raise SimConfigError("SGLang needs --model-path (or a model after 'sglang serve')")
    served = parsed.last("--served-model-name") or model
    mode = parsed.last("--disaggregation-mode")
    if mode not in (None, "null", "prefill", "decode"):
        raise SimConfigError(f"--disaggregation-mode {mode!r}: use null, prefill or decode")
    keys = parsed.every("--api-key")
    concurrency = parsed.last("--max-running-requests")
    return EngineSettings(
        engine="sglang",
        model=model,
        served_model_names=(served,),
        host=parsed.last("--host") or "127.0.0.1",
        port=_port(parsed, "--port", 30000),
        api_key=keys[0] if keys else None,
        headless=_int(parsed, "--node-rank", 0) >= 1,
        enable_metrics="--enable-metrics" in parsed.flags,
        disaggregation_mode=None if mode in (None, "null") else mode,
        bootstrap_port=_port(parsed, "--disaggregation-bootstrap-port", 8998),
        max_model_len=_int(parsed, "--context-length", 32768),
        max_concurrency=int(concurrency) if concurrency and concurrency.isdigit() else None,
        skip_warmup="--skip-server-warmup" in parsed.flags,
        server_args=_server_args(parsed, model, "model_path"),
        rendezvous_port=_sglang_rendezvous(parsed),
        leader=_sglang_leader(parsed),
    )


def _server_args(parsed: _Parsed, model: str, model_key: str) -> dict[str, object]:
    """What /server_info reports: the flags as given, keyed like the engines' ServerArgs."""
    args: dict[str, object] = {model_key: model}
    for name, values in parsed.values.items():
        if name in ("--api-key", "--admin-api-key"):
            continue  # never echo secrets
        key = name.lstrip("-").replace("-", "_")
        args[key] = values if name in _LIST_FLAGS else values[-1]
    for name in parsed.flags:
        args[name.lstrip("-").replace("-", "_")] = True
    return args


def _router(flavour: RouterFlavour, tokens: list[str]) -> RouterSettings:
    parsed = _scan(tokens)
    pd = bool(parsed.flags & {"--pd-disaggregation", "--vllm-pd-disaggregation"})
    decode = tuple(parsed.every("--decode"))
    workers = tuple(parsed.every("--worker-urls"))
    if pd and (not parsed.prefill or not decode):
        raise SimConfigError("PD routing needs at least one --prefill URL and one --decode URL")
    if not pd and not workers:
        raise SimConfigError(
            "the router needs --pd-disaggregation with --prefill/--decode, or --worker-urls"
        )
    default_host = "127.0.0.1" if flavour == "vllm-router" else "0.0.0.0"
    return RouterSettings(
        flavour=flavour,
        host=parsed.last("--host") or default_host,
        port=_port(parsed, "--port", 30000),
        prefill=tuple(parsed.prefill) if pd else (),
        decode=decode if pd else (),
        workers=() if pd else workers,
    )


def _nginx(tokens: list[str]) -> NginxSettings:
    from orchestrator.sim.nginx_conf import load_nginx_config

    config = DEFAULT_NGINX_CONFIG
    prefix: str | None = None
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("-c", "-p", "-g", "-e") and i + 1 < len(tokens):
            if token == "-c":
                config = tokens[i + 1]
            elif token == "-p":
                prefix = tokens[i + 1]
            i += 2
            continue
        i += 1
    if prefix and not os.path.isabs(config):
        config = os.path.join(prefix, config)
    return load_nginx_config(config)
