"""nginx as a load balancer in front of engines: its config read and its proxying imitated."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.sim.nginx_conf import load_nginx_config
from orchestrator.sim.server import start_command_in_thread, start_in_thread
from orchestrator.sim.settings import Behaviour, SimConfigError

CONFIG = """\
# written by a renderer
worker_processes auto;
events {{ worker_connections 4096; }}
http {{
    upstream engines {{
        least_conn;
        server {a} max_fails=3 fail_timeout=30s;
        server {b};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 64m;
        location = /nginx-health {{ return 200 "ok"; }}
        location / {{
            proxy_pass http://engines;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 3600s;
            proxy_set_header Host $host;
        }}
    }}
}}
"""


def write_config(tmp_path: Path, a: str, b: str, port: int = 0) -> Path:
    path = tmp_path / "nginx.conf"
    path.write_text(CONFIG.format(a=a, b=b, port=port), encoding="utf-8")
    return path


def hostport(url: str) -> str:
    return url.removeprefix("http://")


def test_config_is_read(tmp_path: Path) -> None:
    settings = load_nginx_config(
        str(write_config(tmp_path, "10.0.0.1:8000", "10.0.0.2:8000", 8080))
    )
    assert [(s.host, s.port) for s in settings.servers] == [("127.0.0.1", 8080)]
    upstream = settings.upstreams["engines"]
    assert upstream.servers == ("10.0.0.1:8000", "10.0.0.2:8000")
    assert upstream.least_conn
    locations = {loc.prefix: loc for loc in settings.servers[0].locations}
    assert locations["/"].proxy_to == "engines"
    assert locations["/nginx-health"].exact
    assert locations["/nginx-health"].return_status == 200


def test_conf_d_snippet_through_include(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "default.conf").write_text(
        "upstream u { server 127.0.0.1:9; }\nserver { listen 8081; location / { proxy_pass http://u; } }\n",
        encoding="utf-8",
    )
    main = tmp_path / "nginx.conf"
    main.write_text("events {}\nhttp { include conf.d/*.conf; }\n", encoding="utf-8")
    settings = load_nginx_config(str(main))
    assert [(s.host, s.port) for s in settings.servers] == [("0.0.0.0", 8081)]
    assert settings.upstreams["u"].servers == ("127.0.0.1:9",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http { server { listen 80; }", "unexpected end of file"),
        ("http { upstream u { } server { listen 80; } }", 'no servers are inside upstream "u"'),
        (
            "http { server { listen 80; location / { proxy_pass http://nowhere; } } }",
            'host not found in upstream "nowhere"',
        ),
        ("events {}", "no server block"),
    ],
)
def test_config_errors_read_like_nginx(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.conf"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SimConfigError, match="nginx: \\[emerg\\]") as error:
        load_nginx_config(str(path))
    assert message in str(error.value)


def test_missing_config_names_the_file() -> None:
    with pytest.raises(SimConfigError, match=re.escape('open() "/nonexistent/nginx.conf" failed')):
        load_nginx_config("/nonexistent/nginx.conf")


def test_least_conn_proxying_streaming_and_local_return(tmp_path: Path, client: Any) -> None:
    with (
        start_in_thread("vllm", served_model_name="A", ttft_ms=5, tpot_ms=20) as a,
        start_in_thread("vllm", served_model_name="B", ttft_ms=5, tpot_ms=20) as b,
    ):
        config = write_config(tmp_path, hostport(a.url), hostport(b.url))
        argv = ["nginx", "-c", str(config), "-g", "daemon off;"]
        with start_command_in_thread(argv, behaviour=Behaviour()) as lb:
            health = client.request(lb.url, "/nginx-health")
            assert (health.status, health.body) == (200, b"ok")
            # A long stream holds one upstream busy; least_conn sends the next ones elsewhere.
            long_body = {"prompt": "x", "max_tokens": 40, "ignore_eos": True, "stream": True}
            result: dict[str, Any] = {}

            def long_stream() -> None:
                result["stream"] = client.stream(lb.url, "/v1/completions", long_body)

            thread = threading.Thread(target=long_stream)
            thread.start()
            assert client.wait_for(
                lambda: _running(client, a) + _running(client, b) == 1, timeout=3
            )
            busy = "A" if _running(client, a) else "B"
            short = {"prompt": "x", "max_tokens": 1}
            models = [
                client.post(lb.url, "/v1/completions", short).json()["model"] for _ in range(3)
            ]
            assert models == [("B" if busy == "A" else "A")] * 3
            thread.join(timeout=10)
            status, events = result["stream"]
            assert status == 200
            assert len([e for e in events if e.data != "[DONE]"]) == 40
            assert all(e.json()["model"] == busy for e in events if e.data != "[DONE]")


def _running(client: Any, sim: Any) -> int:
    return int(client.request(sim.url, "/load").json()["server_load"])


def test_unreachable_upstream_is_skipped_then_502(tmp_path: Path, client: Any) -> None:
    dead = f"127.0.0.1:{client.free_port()}"
    with start_in_thread("vllm", served_model_name="up") as alive:
        config = write_config(tmp_path, dead, hostport(alive.url))
        with start_command_in_thread(["nginx", "-c", str(config)], behaviour=Behaviour()) as lb:
            for _ in range(3):
                reply = client.post(lb.url, "/v1/completions", {"prompt": "x", "max_tokens": 1})
                assert reply.status == 200
                assert reply.json()["model"] == "up"
        assert any("connect() failed" in line for line in lb.logs)
    both_dead = write_config(tmp_path, dead, f"127.0.0.1:{client.free_port()}")
    with start_command_in_thread(["nginx", "-c", str(both_dead)], behaviour=Behaviour()) as lb:
        started = time.monotonic()
        reply = client.request(lb.url, "/v1/models")
        assert reply.status == 502
        assert b"502 Bad Gateway" in reply.body
        assert time.monotonic() - started < 5
