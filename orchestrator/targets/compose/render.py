"""Files from `ServiceSpec`s: what an ops team commits to its repository.

`DIR/plan.json`, `DIR/README.md`, `DIR/.env.example`, and per node `DIR/<node>/compose.yaml`,
`DIR/<node>/launch.sh` and, with a load balancer, `DIR/<node>/nginx.conf`.

Every decision is made in Python (here, for presentation, and in `engines/` for content); the
templates only loop and print values that the filters quote. Quoting rules:
- YAML: every string is a JSON-style double-quoted scalar (`yaml_str`), valid for any text;
- compose interpolates `$` everywhere, so literal dollars are doubled, and only the references
  deploy itself writes (`${HF_TOKEN}`, the API key variable, `${HF_HOME:-...}`) stay live;
- shell: `shlex.quote` for every word, except those references, which are double-quoted so the
  shell expands them at run time.
Re-rendering the same plan writes byte-identical files: no timestamps, stable order.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from orchestrator.engines.common import (
    HF_CACHE_SOURCE,
    SIM_IMAGE,
    healthcheck_test,
    secret_env,
)
from orchestrator.engines.jit_cache import is_home_path
from orchestrator.errors import InputError
from orchestrator.group_health import restart_note
from orchestrator.plan import Plan
from orchestrator.spec import LOG_OPTIONS, Mount, ServiceSpec, is_secret_ref

_YAML_ESCAPES = {
    **{chr(code): f"\\u{code:04x}" for code in range(0x7F, 0xA0)},
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
    "\ufeff": "\\ufeff",
}
_YAML_ESCAPE_RE = re.compile("[" + "".join(_YAML_ESCAPES) + "]")
_SAFE_DIR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# What a render writes inside each node's directory: the files a re-render may replace or drop.
_NODE_FILES = ("compose.yaml", "launch.sh", "nginx.conf")
LOG_ROTATION = {"driver": "json-file", "options": sorted(LOG_OPTIONS.items())}
_TOP_FILES = ("plan.json", "README.md", ".env.example")


class ShellRaw(str):
    """A word already written for the shell (a double-quoted variable reference)."""


# --------------------------------------------------------------------------------------------
# Filters


def yaml_str(value: object) -> str:
    """A double-quoted YAML scalar for any string: JSON escapes, plus the characters YAML
    treats as line breaks or refuses in a stream (C1 controls, U+2028/9, BOM)."""
    text = json.dumps(str(value), ensure_ascii=False)
    return _YAML_ESCAPE_RE.sub(lambda match: _YAML_ESCAPES[match.group(0)], text)


def shell_quote(value: object) -> str:
    if isinstance(value, ShellRaw):
        return str(value)
    text = str(value)
    if "==" in text or text.startswith("="):
        # `NCCL_IB_HCA==mlx5_0` is a valid word, but shellcheck (and a reader) takes an
        # unquoted `==` for a mistyped comparison: quote it.
        return "'" + text.replace("'", "'\\''") + "'"
    return shlex.quote(text)


def shell_argv(values: Iterable[object]) -> str:
    return " ".join(shell_quote(value) for value in values)


# --------------------------------------------------------------------------------------------
# Presentation of specs


def compose_value(value: str, refs: frozenset[str]) -> str:
    """Double literal `$` so compose keeps it; deploy's own references stay live."""
    if value in refs:
        return value
    return value.replace("$", "$$")


def _refs(plan: Plan) -> frozenset[str]:
    return frozenset({HF_CACHE_SOURCE, *("${" + name + "}" for name in secret_env(plan))})


def _shell_word(value: str, secrets: list[str]) -> str:
    if is_secret_ref(value, secrets):
        return ShellRaw(f'"{value}"')
    return value


def _duration(seconds: int) -> str:
    return f"{seconds}s"


@dataclass(frozen=True)
class NodeFiles:
    name: str
    services: list[ServiceSpec]


def _compose_service(
    spec: ServiceSpec, node_names: set[str], refs: frozenset[str]
) -> dict[str, Any]:
    def esc(value: str) -> str:
        return compose_value(value, refs)

    # List form: a bare name passes the host's value through; `KEY=${VAR}` interpolates it.
    environment = sorted(
        [esc(name) for name in spec.secret_env]
        + [f"{key}={esc(value)}" for key, value in spec.environment.items()],
        key=lambda item: item.split("=", 1)[0],
    )
    return {
        "name": spec.name,
        "image": esc(spec.image),
        "entrypoint": [esc(word) for word in spec.entrypoint or []],
        "command": [esc(word) for word in spec.command],
        "environment": environment,
        "ports": [f"{port.host_ip}:{port.host}:{port.container}" for port in spec.ports],
        "volumes": [_compose_volume(mount, esc) for mount in spec.mounts],
        "devices": [f"{device}:{device}" for device in spec.devices],
        "network_mode": spec.network_mode if spec.network_mode == "host" else None,
        "ipc": spec.ipc_mode,
        # Docker ignores shm_size when the container shares the host's IPC namespace.
        "shm_size": None if spec.ipc_mode == "host" else spec.shm_size,
        "logging": LOG_ROTATION,
        "ulimits": sorted(spec.ulimits.items()),
        "cap_add": sorted(spec.cap_add),
        "privileged": spec.privileged,
        "gpus": [str(gpu) for gpu in spec.gpus] if spec.gpus is not None else None,
        "healthcheck": {
            "test": [esc(word) for word in healthcheck_test(spec.probe)],
            "interval": _duration(spec.probe.interval_s),
            "timeout": _duration(spec.probe.timeout_s),
            "retries": spec.probe.retries,
            "start_period": _duration(spec.probe.start_period_s),
        },
        "restart": spec.restart,
        "restart_note": restart_note(spec.restart, spec.group),
        "labels": sorted((key, esc(value)) for key, value in spec.labels.items()),
        "depends_on": [name for name in spec.depends_on if name in node_names],
    }


def flag_lines(words: list[str], program_words: int) -> list[list[str]]:
    """Split an argv into lines: the program, then one flag and its values per line."""
    lines = [list(words[:program_words])]
    for word in words[program_words:]:
        if word.startswith("-") and len(word) > 1 and not word[1].isdigit() and lines[-1]:
            lines.append([word])
        else:
            lines[-1].append(word)
    return [line for line in lines if line]


def _compose_volume(mount: Mount, esc: Callable[[str], str]) -> dict[str, Any]:
    """Long syntax, except for the Hugging Face cache: the short form creates a missing host
    directory in every compose implementation (the long form's `create_host_path` is refused
    by docker-compose 1.x); its source holds no `:` that the short form could misread."""
    if mount.source == HF_CACHE_SOURCE or is_home_path(mount.source):
        short = f"{mount.source}:{mount.target}" + (":ro" if mount.read_only else "")
        return {"short": short}
    return {
        "short": None,
        "source": esc(mount.source),
        "target": esc(mount.target),
        "read_only": mount.read_only,
    }


def _docker_run(spec: ServiceSpec, slug: str, secrets: list[str]) -> list[list[str]]:
    """`docker run` lines equivalent to the compose service."""
    lines: list[list[str]] = [["docker", "run", "--detach"], ["--name", f"{slug}-{spec.name}"]]
    lines.append(["--restart", spec.restart])
    lines += [["--label", f"{key}={value}"] for key, value in sorted(spec.labels.items())]
    if spec.network_mode == "host":
        lines.append(["--network", "host"])
    for port in spec.ports:
        lines.append(["--publish", f"{port.host_ip}:{port.host}:{port.container}"])
    lines.append(["--ipc", spec.ipc_mode])
    if spec.ipc_mode != "host":
        lines.append(["--shm-size", spec.shm_size])
    lines += [["--log-opt", f"{key}={value}"] for key, value in LOG_ROTATION["options"]]
    if spec.gpus is not None:
        lines.append(["--gpus", '"device=' + ",".join(str(gpu) for gpu in spec.gpus) + '"'])
    lines += [["--ulimit", f"{name}={limit}"] for name, limit in sorted(spec.ulimits.items())]
    lines += [["--cap-add", cap] for cap in sorted(spec.cap_add)]
    lines += [["--device", device] for device in spec.devices]
    if spec.privileged:
        lines.append(["--privileged"])
    for mount in spec.mounts:
        suffix = ":ro" if mount.read_only else ""
        if mount.source == HF_CACHE_SOURCE:
            volume: str = ShellRaw(
                f'"${{HF_HOME:-$HOME/.cache/huggingface}}:{mount.target}{suffix}"'
            )
        elif is_home_path(mount.source):
            relative = shlex.quote(f"{mount.source[2:]}:{mount.target}{suffix}")
            volume = ShellRaw(f'"$HOME"/{relative}')
        elif mount.source.startswith("./"):
            relative = shlex.quote(f"{mount.source[2:]}:{mount.target}{suffix}")
            volume = ShellRaw(f'"$HERE"/{relative}')
        else:
            volume = f"{mount.source}:{mount.target}{suffix}"
        lines.append(["--volume", volume])
    lines += [["--env", name] for name in spec.secret_env]
    for key, value in spec.environment.items():
        if is_secret_ref(value, secrets):
            lines.append(["--env", ShellRaw(f'"{key}={value}"')])
        else:
            lines.append(["--env", f"{key}={value}"])
    probe = spec.probe
    lines.append(["--health-cmd", healthcheck_test(probe)[1]])
    lines.append(["--health-interval", _duration(probe.interval_s)])
    lines.append(["--health-timeout", _duration(probe.timeout_s)])
    lines.append(["--health-retries", str(probe.retries)])
    lines.append(["--health-start-period", _duration(probe.start_period_s)])
    entrypoint = spec.entrypoint or []
    if entrypoint:
        lines.append(["--entrypoint", entrypoint[0]])
    command = [_shell_word(word, secrets) for word in [*entrypoint[1:], *spec.command]]
    program = len(entrypoint[1:]) + (1 if command and not command[0].startswith("-") else 0)
    lines.append([spec.image, *command[:program]])
    return lines + flag_lines(command[program:], 0)


def _bare_metal(spec: ServiceSpec, secrets: list[str]) -> list[list[str]]:
    """The same program run on the host: host paths instead of container paths, GPUs by
    CUDA_VISIBLE_DEVICES, and the bind address the container's port publication had."""
    argv = [*(spec.entrypoint or []), *spec.command]
    for mount in spec.mounts:
        if mount.source.startswith(("${", "./", "~/")):
            continue
        argv = [
            mount.source + word[len(mount.target) :]
            if word == mount.target or word.startswith(mount.target + "/")
            else word
            for word in argv
        ]
    if spec.network_mode == "bridge" and spec.ports and "--host" in argv:
        position = argv.index("--host") + 1
        argv[position] = spec.ports[0].host_ip
    program = len(spec.entrypoint or [])
    if spec.role == "lb":
        argv = [argv[0], "-c", ShellRaw('"$HERE/nginx.conf"'), *argv[1:]]
    elif program < len(argv) and not argv[program].startswith("-"):
        program += 1  # vLLM's positional model
    lines: list[list[str]] = [["exec", "env"]]
    if spec.gpus is not None:
        lines.append(["CUDA_VISIBLE_DEVICES=" + ",".join(str(gpu) for gpu in spec.gpus)])
    for key, value in spec.environment.items():
        if is_secret_ref(value, secrets):
            lines.append([ShellRaw(f'"{key}={value}"')])
        else:
            lines.append([f"{key}={value}"])
    words = [_shell_word(word, secrets) for word in argv]
    return lines + flag_lines(words, program if spec.role != "lb" else 1)


def _function_name(service: str) -> str:
    return service.replace("-", "_").replace(".", "_")


def compose_project(plan: Plan) -> str:
    """A compose project / container-name prefix derived from the deployment name."""
    slug = re.sub(r"[^a-z0-9]+", "-", plan.name.lower()).strip("-")
    return slug or "deployment"


def _nodes(plan: Plan, services: list[ServiceSpec]) -> list[NodeFiles]:
    order = [node.name for node in plan.hardware.node_list]
    names = sorted({spec.node for spec in services}, key=order.index)
    for name in names:
        if not _SAFE_DIR.match(name):
            raise InputError(
                f"node name {name!r} cannot be a directory name",
                "rename the node in the cluster file (letters, digits, '.', '_', '-')",
            )
    return [NodeFiles(name, [spec for spec in services if spec.node == name]) for name in names]


# --------------------------------------------------------------------------------------------
# Writing


def environment() -> Any:
    import jinja2

    from orchestrator.resources import templates_dir

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yaml_str"] = yaml_str
    env.filters["shell_quote"] = shell_quote
    env.filters["shell_argv"] = shell_argv
    return env


def render_deployment(plan: Plan, services: list[ServiceSpec], out_dir: Path) -> list[Path]:
    """Write every file of the deployment under `out_dir`; return their paths, in order.

    The files are written to a temporary sibling that is then renamed to `out_dir`, so a
    failure leaves an earlier render untouched; the user's own files in it are carried over."""
    from orchestrator.files import os_error, replace_directory, resolve_target

    final = resolve_target(out_dir)
    try:
        _check_out_dir(final)
    except OSError as error:
        raise os_error(error) from None
    written = replace_directory(
        final, lambda stage: _write_deployment(plan, services, stage), _is_users_file
    )
    return [out_dir / path for path in written]


def _is_users_file(relative: PurePosixPath) -> bool:
    """Whether a file of an earlier render is the user's (kept) rather than one deploy writes."""
    parts = relative.parts
    if len(parts) == 1:
        return parts[0] not in _TOP_FILES
    return not (len(parts) == 2 and parts[1] in _NODE_FILES)


def _write_deployment(plan: Plan, services: list[ServiceSpec], out_dir: Path) -> list[Path]:
    """Write the files under `out_dir` (a fresh directory); return their relative paths."""
    from orchestrator.engines.routers import nginx_settings

    env = environment()
    refs = _refs(plan)
    secrets = secret_env(plan)
    slug = compose_project(plan)
    nodes = _nodes(plan, services)
    written: list[Path] = []

    def write(path: Path, text: str, executable: bool = False) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            if executable:
                path.chmod(0o755)
        except OSError as error:  # a failed write() names no file: name it for the error line
            raise OSError(error.errno, error.strerror, str(path)) from error
        written.append(path)

    write(
        out_dir / "plan.json",
        json.dumps(plan.model_dump(mode="json"), indent=2, sort_keys=True) + "\n",
    )
    write(
        out_dir / ".env.example",
        env.get_template("env.example.j2").render(
            secrets=secrets, api_key_env=plan.request.api_key_env
        ),
    )
    write(
        out_dir / "README.md",
        env.get_template("README.md.j2").render(**readme_context(plan, services, slug)),
    )
    nginx = nginx_settings(plan, services)
    for node in nodes:
        names = {spec.name for spec in node.services}
        header = {"deployment": plan.name, "node": node.name, "plan_hash": plan.plan_hash()}
        compose = [_compose_service(spec, names, refs) for spec in node.services]
        write(
            out_dir / node.name / "compose.yaml",
            env.get_template("compose.yaml.j2").render(services=compose, **header),
        )
        launch = [
            {
                "name": spec.name,
                "function": _function_name(spec.name),
                "container": f"{slug}-{spec.name}",
                "docker": _docker_run(spec, slug, secrets),
                "bare": _bare_metal(spec, secrets),
                "wait": [
                    {"container": f"{slug}-{dep}", "seconds": _wait_seconds(node.services, dep)}
                    for dep in spec.depends_on
                    if dep in names
                ],
            }
            for spec in node.services
        ]
        required = [plan.request.api_key_env] if plan.request.api_key_env else []
        write(
            out_dir / node.name / "launch.sh",
            env.get_template("launch.sh.j2").render(services=launch, required=required, **header),
            executable=True,
        )
        if nginx is not None and any(spec.role == "lb" for spec in node.services):
            write(
                out_dir / node.name / "nginx.conf",
                env.get_template("nginx.conf.j2").render(nginx=nginx, **header),
            )
    return [path.relative_to(out_dir) for path in written]


def _check_out_dir(out_dir: Path) -> bool:
    """Whether `out_dir` holds an earlier render (to be replaced). A directory with other files
    is refused: a render writes README.md and .env.example, which would overwrite a project's
    own files, and a stale node directory left beside fresh ones could be started by mistake."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is not a directory", "pass a new or empty directory to --out")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return False
    try:
        earlier = json.loads((out_dir / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        earlier = None
    if not isinstance(earlier, dict) or "roles" not in earlier or "name" not in earlier:
        raise InputError(
            f"{out_dir} is not empty and holds no earlier render (no deploy plan.json)",
            "pass a new or empty directory to --out",
        )
    return True


def _wait_seconds(services: list[ServiceSpec], name: str) -> int:
    spec = next(spec for spec in services if spec.name == name)
    probe = spec.probe
    return probe.start_period_s + probe.interval_s * (probe.retries + 1)


# --------------------------------------------------------------------------------------------
# README


def _start_steps(plan: Plan, services: list[ServiceSpec], slug: str) -> list[dict[str, Any]]:
    nodes = [node.name for node in _nodes(plan, services)]
    fronts = [spec for spec in services if spec.role in ("router", "lb")]
    compose = f"docker compose -p {slug} up -d"
    if len(nodes) == 1:
        why = (
            "compose starts the engines first and the front only once they report healthy "
            "(depends_on), so one command is enough."
            if fronts
            else "one engine instance; its health check turns healthy once the weights are "
            "loaded and the server answers."
        )
        return [{"nodes": nodes, "command": compose, "why": why}]
    spans = any(len(replica.slices) > 1 for role in plan.roles for replica in role.replicas)
    if fronts:
        last = fronts[0].node
        first = [name for name in nodes if name != last]
        first_why = (
            "engine ranks on these nodes wait for their rank-0 peers at the rendezvous "
            "address (and the other way round), so start every engine node within a few "
            "minutes of each other; their order does not matter."
            if spans
            else "each of these nodes runs whole engine instances of its own (no rendezvous "
            "with other nodes); start them in any order."
        )
        return [
            {
                "nodes": first,
                "command": compose,
                "why": first_why,
            },
            {
                "nodes": [last],
                "command": compose,
                "why": "this node runs the front. compose holds it back until the engines on this "
                "node are healthy; check that the other nodes' engines are healthy too "
                "(`docker compose ps` there) before sending traffic.",
            },
        ]
    return [
        {
            "nodes": nodes,
            "command": compose,
            "why": "the ranks of one engine instance rendezvous with each other: start all nodes "
            "within a few minutes of each other, in any order. Rank 0 serves HTTP once all "
            "ranks have joined and the weights are loaded.",
        }
    ]


def _endpoint(plan: Plan, services: list[ServiceSpec]) -> tuple[str, str]:
    fronts = [spec for spec in services if spec.role in ("router", "lb")]
    entry = fronts[0] if fronts else next(spec for spec in services if spec.probe.port)
    host = "0.0.0.0" if plan.request.public else "127.0.0.1"
    return entry.node, f"http://{host}:{entry.probe.port}"


def start_formula(plan: Plan, simulate: bool = False) -> str:
    from orchestrator.engines import cold_start, common

    parts = []
    if cold_start.download_s(plan, simulate) > 0:
        parts.append(
            f"the checkpoint (about {cold_start.checkpoint_gib(plan):.0f} GiB) downloaded at "
            f"{cold_start.download_rate(plan):g} GiB/s when the node's Hugging Face cache lacks "
            "it (`--download-rate`; re-render with `--download-rate 0` once every node holds it)"
        )
    parts += [
        f"weights per node ÷ {common.LOAD_RATE_GIB_PER_S} GiB/s (a cold disk or network "
        "filesystem)",
        f"{common.ENGINE_START_S} s engine start",
        f"{common.CUDA_GRAPHS_S} s CUDA graphs and compilation",
    ]
    if plan.engine.name == "sglang":
        parts.append(f"{common.SGLANG_WARMUP_S} s warmup request")
    if any(len(replica.slices) > 1 for role in plan.roles for replica in role.replicas):
        parts.append(f"{common.MULTI_NODE_RENDEZVOUS_S} s multi-node rendezvous")
    return ", plus ".join(parts)


def readme_context(plan: Plan, services: list[ServiceSpec], slug: str) -> dict[str, Any]:
    node, url = _endpoint(plan, services)
    roles: dict[str, ServiceSpec] = {}
    for spec in services:
        roles.setdefault(spec.role, spec)
    rows = [
        {
            "name": spec.name,
            "node": spec.node,
            "role": spec.role,
            "gpus": ",".join(str(gpu) for gpu in spec.gpus) if spec.gpus is not None else "-",
            "port": str(spec.probe.port) if spec.probe.kind == "http" and spec.probe.port else "-",
            "probe": _probe_words(spec),
            "start": f"{spec.probe.start_period_s // 60} min",
        }
        for spec in services
    ]
    flags = [
        {
            "service": spec.name,
            "rows": [
                {
                    "flag": source.flag,
                    "value": (source.value or "").replace("|", "\\|"),
                    "origin": source.origin,
                    "why": source.why.replace("|", "\\|"),
                }
                for source in spec.flags
            ],
        }
        for spec in roles.values()
    ]
    from orchestrator.targets.compose.readme import readme_extras

    return {
        **readme_extras(plan, services),
        "plan": plan,
        "start_formula": start_formula(
            plan, simulate=any(spec.image == SIM_IMAGE for spec in services)
        ),
        "deployment": plan.name,
        "slug": slug,
        "plan_hash": plan.plan_hash(),
        "parallelism": plan.parallelism.label(),
        "steps": _start_steps(plan, services, slug),
        "endpoint_node": node,
        "endpoint": url,
        "services": rows,
        "flags": flags,
        "secrets": secret_env(plan),
        "api_key_env": plan.request.api_key_env,
        "nginx": any(spec.role == "lb" for spec in services),
        "multi_node_public": len({spec.node for spec in services}) > 1,
        "restarts": restart_lines(services),
    }


def _probe_words(spec: ServiceSpec) -> str:
    if spec.probe.kind == "http":
        return f"GET {spec.probe.path}"
    if spec.probe.kind == "peer":
        return f"rank 0 answers on {spec.probe.host}:{spec.probe.port}"
    return "process running"


def restart_lines(services: list[ServiceSpec]) -> list[str]:
    """Who restarts what, one line per restart group (the compose files say the same)."""
    by_docker = [spec.name for spec in services if spec.restarted_by == "docker"]
    groups: dict[str, list[str]] = {}
    for spec in services:
        if spec.restarted_by == "deploy":
            groups.setdefault(spec.group or spec.name, []).append(spec.name)
    lines = []
    if by_docker:
        lines.append(
            f"Docker (`restart: unless-stopped`) restarts {', '.join(f'`{n}`' for n in by_docker)}"
            ", also after a daemon restart or a reboot."
        )
    for group, names in groups.items():
        lines.append(
            f"deploy's supervisor restarts group `{group}` ({', '.join(f'`{n}`' for n in names)})"
            ' whole (`restart: "no"` in compose): a rank that comes back alone cannot rejoin its'
            " peers. Without deploy, restart the group with `docker compose up -d` on each of its nodes."
        )
    return lines
