#!/usr/bin/env python3
"""Record how the real vLLM CPU engine fails, as test fixtures.

Runs the engine image (deploy-vllm-cpu:0.32.0, `deploy engine-image build`) once per bad input
and saves its real output under tests/realengine/fixtures/failures/: `<case>.log` (stdout and
stderr as the container printed them) and `<case>.json` (the command, environment, exit code and
image). Nothing in these files is written by hand; rerun this script to regenerate them after an
engine upgrade. The supervisor's start-failure classification is tested against them
(tests/realengine/test_failure_fixtures.py).

Usage: scripts/record_engine_failures.py [CASE ...]   (default: every case; --list names them)
Needs Docker and the image; takes a few minutes a case on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.docker.engine_image import VLLM_CPU_IMAGE, TinyModel, make_tiny_model  # noqa: E402

OUT = REPO / "tests" / "realengine" / "fixtures" / "failures"
MODEL = "/models/tiny"
PREFIX = "deploy-rec-"
DEADLINE_S = 900
# A bad input fails before the engine is ready: a cold start here takes 2-4 minutes.
START_DEADLINE_S = 420


@dataclass(frozen=True)
class Case:
    """One bad input and what the engine is expected to do with it."""

    what: str
    flags: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    shm: str | None = "1g"
    model: TinyModel | None = None  # None: the default tiny model
    model_path: str = MODEL
    # start: it must exit by itself; port: something already listens on the API port;
    # runtime: it gets ready, then its engine-core process is killed.
    mode: str = "start"


CASES: dict[str, Case] = {
    "unknown-flag": Case("a flag this vLLM does not have", flags=("--no-such-flag", "1")),
    "missing-model-dir": Case("a model folder that does not exist", model_path="/models/absent"),
    "unknown-architecture": Case(
        "an architecture vLLM has no implementation of",
        model=TinyModel(architecture="NoSuchModelForCausalLM"),
    ),
    "tp-not-dividing-heads": Case(
        "TP 3 over a model with 4 attention heads",
        flags=("--tensor-parallel-size", "3"),
        env={"VLLM_CPU_OMP_THREADS_BIND": "0|1|0"},
    ),
    "context-above-model": Case(
        "--max-model-len above the model's max_position_embeddings (4096)",
        flags=("--max-model-len", "65536"),
    ),
    # VLLM_CPU_KVCACHE_SPACE is whole GiB (vLLM parses it with int()): 1 GiB holds 524,288
    # tokens of a 4-layer tiny model, half of one request of 1,048,576 tokens.
    "kv-cache-too-small": Case(
        "a KV cache space that cannot hold one request of the context length",
        flags=("--max-model-len", "1048576"),
        model=TinyModel(layers=4, max_position=1048576),
    ),
    "kv-cache-above-memory": Case(
        "a KV cache space larger than the host's memory",
        env={"VLLM_CPU_KVCACHE_SPACE": "4096"},
    ),
    # Not recorded: VLLM_CPU_KVCACHE_SPACE unset. vLLM then takes 0.92 of the host's memory for
    # the worker; it fails only when other processes hold more than the rest, and otherwise
    # starts holding almost all of it.
    "small-shm": Case("Docker's default 64 MB /dev/shm", shm=None),
    "numa-bind": Case(
        "threads bound to CPUs the host does not have", env={"VLLM_CPU_OMP_THREADS_BIND": "60-63"}
    ),
    "port-in-use": Case("the API port already taken on the node", mode="port"),
    "engine-death": Case("the engine-core process dies while serving", mode="runtime"),
}


def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise SystemExit(f"record: docker {args[0]} failed: {result.stderr.strip()[-300:]}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_case(name: str, case: Case, models: Path, cache: Path) -> None:
    model_dir = models / "default"
    if case.model is not None:
        model_dir = models / name
        if not model_dir.exists():
            make_tiny_model(model_dir, case.model)
    env = {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_OMP_THREADS_BIND": "0-1",
        "VLLM_CACHE_ROOT": "/cache/vllm",
        "TORCHINDUCTOR_CACHE_DIR": "/cache/inductor",
        **case.env,
    }
    env = {key: value for key, value in env.items() if value != ""}
    argv = ["vllm", "serve", case.model_path, "--served-model-name", "tiny"]
    argv += ["--host", "0.0.0.0", "--port", "8000", *case.flags]
    container = f"{PREFIX}{uuid.uuid4().hex[:8]}-{name}"
    helpers: list[str] = []
    args = ["run", "-d", "--name", container]
    if case.shm is not None:
        args += ["--shm-size", case.shm]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    args += ["-v", f"{model_dir}:{MODEL}:ro", "-v", f"{cache}:/cache"]
    port = free_port()
    try:
        if case.mode == "port":
            holder = f"{container}-holder"
            docker(
                "run", "-d", "--name", holder, VLLM_CPU_IMAGE,
                "python3", "-m", "http.server", "8000",
            )  # fmt: skip
            helpers.append(holder)
            args += ["--network", f"container:{holder}"]
        else:
            args += ["-p", f"127.0.0.1:{port}:8000"]
        docker(*args, VLLM_CPU_IMAGE, *argv)
        if case.mode == "runtime":
            wait_ready(container, port)
            # The engine core is a child process of the API server: kill it as the OOM killer
            # would.
            docker(
                "exec", container, "sh", "-c",
                "kill -9 $(pgrep -f 'VLLM::EngineCore' | head -1)",
            )  # fmt: skip
            # The next request meets the dead engine.
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=30).read()
        try:
            code = int(docker("wait", container, timeout=START_DEADLINE_S).stdout.strip())
        except subprocess.TimeoutExpired:
            # It did not fail: this input is not a start failure of this engine version.
            print(f"record: {name}: still running after {START_DEADLINE_S} s; not recorded")
            return
        output = merged(container)
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"{name}.log").write_text(output)
        meta = {
            "case": name,
            "what": case.what,
            "argv": argv,
            "env": {k: v for k, v in env.items() if k.startswith("VLLM_CPU")},
            "shm": case.shm or "docker default (64m)",
            "model": (case.model or TinyModel()).model_dump(),
            "exit_code": code,
            "image": VLLM_CPU_IMAGE,
            "recorded_by": "scripts/record_engine_failures.py",
        }
        (OUT / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(f"record: {name}: exit {code}, {len(output.splitlines())} lines")
    finally:
        for item in [container, *helpers]:
            docker("rm", "-f", item, check=False)


def merged(container: str) -> str:
    """stdout and stderr interleaved as printed (docker logs keeps their order by timestamp)."""
    result = subprocess.run(
        ["docker", "logs", "--timestamps", container], capture_output=True, text=True, timeout=120
    )
    lines = result.stdout.splitlines() + result.stderr.splitlines()
    lines.sort(key=lambda line: line.split(" ", 1)[0])
    return "".join(line.split(" ", 1)[1] + "\n" if " " in line else "\n" for line in lines)


def wait_ready(container: str, port: int) -> None:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        state = docker("inspect", "--format", "{{.State.Running}}", container).stdout.strip()
        if state != "true":
            raise SystemExit(f"record: {container} exited before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"record: {container} was not ready within {DEADLINE_S} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cases", nargs="*", help="cases to record (default: all)")
    parser.add_argument("--list", action="store_true", help="name the cases and exit")
    parser.add_argument(
        "--compile-cache", type=Path, help="vLLM's compile cache to reuse (default: a new one)"
    )
    args = parser.parse_args()
    if args.list:
        for name, case in CASES.items():
            print(f"{name}: {case.what}")
        return 0
    unknown = [name for name in args.cases if name not in CASES]
    if unknown:
        print(f"record: unknown case {unknown[0]!r}; see --list", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="deploy-rec-") as tmp:
        models, cache = Path(tmp) / "models", args.compile_cache or Path(tmp) / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        cache.chmod(0o777)
        make_tiny_model(models / "default", TinyModel())
        for name in args.cases or list(CASES):
            run_case(name, CASES[name], models, cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
