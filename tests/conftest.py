"""Fixtures shared by every test area."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_tiny_model(directory: Path) -> Path:
    """A Llama-shaped model directory as the engine image's `deploy-tiny-model` writes it
    (defaults: 2 layers, hidden 256, 4 heads, 2 KV heads, head_dim 64, BF16): config only."""
    import json

    directory.mkdir()
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "vocab_size": 2048,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def cli_runner():  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    return CliRunner()


def pytest_addoption(parser: pytest.Parser) -> None:
    # Rewrites tests/golden/ from the current renderers (tests/render/test_golden.py).
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/golden/ instead of comparing with them",
    )


@pytest.fixture(autouse=True, scope="session")
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Tests never write the user's catalog cache or deployment state."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
    yield
    patch.undo()


# Ports a deployment takes beyond its endpoint: replicas behind a load balancer (+1, +2, ...)
# and the prefill and decode pools behind a router (+100, +200).
ENDPOINT_OFFSETS = (0, 1, 2, 3, 100, 200)


def free_ports(count: int, offsets: tuple[int, ...] = (0,)) -> list[int]:
    """`count` ports free now (and `port + offset` for each offset), drawn below the kernel's
    ephemeral range: the OS hands those out to nobody by itself, so no outgoing connection or
    other `bind(0)` can take one between this call and the bind of the program under test (a
    port the OS picked from the ephemeral range was once taken in that gap). The OS still
    says which are free: each is bound once here."""
    import random
    import socket

    low = _ephemeral_low()
    top = max(offsets)
    found: list[int] = []
    for _ in range(1000):
        base = random.randrange(10_000, low - top)
        if any(abs(base - other) <= top for other in found):
            continue
        held: list[socket.socket] = []
        try:
            for offset in offsets:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(sock)
                sock.bind(("0.0.0.0", base + offset))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        found.append(base)
        if len(found) == count:
            return found
    raise RuntimeError(f"no {count} free ports found below {low} in 1000 tries")


def _ephemeral_low() -> int:
    """The bottom of the range the kernel picks outgoing and `bind(0)` ports from (at least
    20000, so that the draw above has room even where the range was widened downwards)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return max(20_000, int(text.split()[0]))
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(offsets: tuple[int, ...] = (0,)) -> int:
    """A free port (and `port + offset` for each offset also free), so two runs on one machine,
    or a deployment a user has up, never meet on a fixed port."""
    return free_ports(1, offsets)[0]


@pytest.fixture
def endpoint_port() -> int:
    """A free endpoint port for `deploy up --port` (with the ports behind it free too)."""
    return free_port(ENDPOINT_OFFSETS)
