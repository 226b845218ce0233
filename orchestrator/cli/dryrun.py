"""`--dry-run`: the plan and, per node and service, the exact command and where each flag
came from. Plain text and only the standard library, so a dry run answers at once."""

from __future__ import annotations

import shlex

from orchestrator.plan import Plan
from orchestrator.spec import ServiceSpec

INDENT = "    "


def _gpus(indices: list[int] | None) -> str:
    if not indices:
        return "no GPU"
    ordered = sorted(indices)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 1:
        return f"GPUs {ordered[0]}-{ordered[-1]}"
    return ("GPU " if len(ordered) == 1 else "GPUs ") + ",".join(str(i) for i in ordered)


def _minutes(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


def command_lines(spec: ServiceSpec) -> list[str]:
    """The service's argv, shell-quoted, one flag (with its values) per line."""
    argv = [*(spec.entrypoint or []), *spec.command]
    head = len(spec.entrypoint or [])
    if head < len(argv) and not argv[head].startswith("-"):
        head += 1  # a positional model (vllm serve MODEL)
    lines = [[shlex.quote(word) for word in argv[:head]]]
    for word in argv[head:]:
        quoted = shlex.quote(word)
        if word.startswith("-") and len(word) > 1 and not word[1].isdigit():
            lines.append([quoted])
        else:
            lines[-1].append(quoted)
    text = [" ".join(line) for line in lines if line]
    return [
        (INDENT if i == 0 else INDENT + "  ") + line + (" \\" if i < len(text) - 1 else "")
        for i, line in enumerate(text)
    ]


def _summary(plan: Plan, services: list[ServiceSpec]) -> list[str]:
    hw = plan.hardware
    lines = [
        f"deployment {plan.name}: {plan.model.id} on {plan.engine.name} {plan.engine.version} "
        f"({plan.engine.image})",
        f"hardware: {hw.nodes} node(s) × {hw.gpus_per_node} {hw.gpu}, {hw.interconnect}, "
        f"fabric {hw.fabric}"
        if plan.cpu is None
        else f"hardware: {hw.nodes} CPU node(s), {hw.gpu_memory_gib:g} GiB host memory, "
        f"fabric {hw.fabric}",
    ]
    unit = "GPU" if plan.cpu is None else "CPU rank"
    for role in plan.roles:
        if role.name == "router":
            continue
        lines.append(
            f"{role.name}: {role.parallelism.label()} × {len(role.replicas)} instance(s), "
            f"{role.parallelism.gpus} {unit}(s) each"
        )
    memory = plan.memory
    lines.append(
        f"memory per {unit}: {memory.weights_gib_per_gpu:.1f} GiB weights, "
        f"{memory.kv_cache_gib_per_gpu:.1f} GiB KV cache ({memory.kv_cache_tokens} tokens), "
        f"context {memory.context}: {'fits' if plan.fits else 'does NOT fit'}"
    )
    fronts = [spec for spec in services if spec.role in ("router", "lb")]
    entry = fronts[0] if fronts else next((s for s in services if s.probe.port), None)
    if entry is not None:
        host = "0.0.0.0" if plan.request.public else "127.0.0.1"
        lines.append(f"endpoint: http://{host}:{entry.probe.port} on {entry.node}")
    lines.append(f"plan hash: {plan.plan_hash()}")
    lines += [f"warning: {warning}" for warning in plan.warnings]
    return lines


def _service(spec: ServiceSpec) -> list[str]:
    probe = spec.probe
    ready = (
        f"GET :{probe.port}{probe.path}" if probe.kind == "http" else "process running (headless)"
    )
    where = f"replica {spec.replica}" + (f" rank {spec.rank}" if spec.group else "")
    lines = [
        f"  {spec.name}  [{spec.role}, {where}, {_gpus(spec.gpus)}, {spec.network_mode} network]",
        f"{INDENT}image {spec.image}; ready: {ready}, start period {_minutes(probe.start_period_s)}",
    ]
    env = [f"{name} (from host)" for name in spec.secret_env]
    env += [f"{key}={value}" for key, value in spec.environment.items()]
    if env:
        lines.append(f"{INDENT}env: " + ", ".join(env))
    if spec.depends_on:
        lines.append(f"{INDENT}after: " + ", ".join(spec.depends_on))
    lines += command_lines(spec)
    if spec.flags:
        width = max(len(source.flag) for source in spec.flags)
        lines.append(f"{INDENT}flag origins:")
        for source in spec.flags:
            why = f"  {source.why}" if source.why else ""
            lines.append(f"{INDENT}  {source.flag.ljust(width)}  {source.origin:<14}{why}".rstrip())
    return lines


def format_dry_run(plan: Plan, services: list[ServiceSpec]) -> str:
    lines = _summary(plan, services)
    addresses = {node.name: node.address for node in plan.hardware.node_list}
    order = [node.name for node in plan.hardware.node_list]
    for node in sorted({spec.node for spec in services}, key=order.index):
        lines += ["", f"node {node} ({addresses[node]})"]
        for spec in services:
            if spec.node == node:
                lines += _service(spec)
    return "\n".join(lines) + "\n"
