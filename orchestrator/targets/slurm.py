"""A Slurm batch script from the same `ServiceSpec`s as the compose files.

One job per deployment: `--nodes` = the plan's nodes, one job step (`srun`) per service, with
the rank's environment; plan node *i* is the job's *i*-th node (`scontrol show hostnames`), and
every node address in a command line becomes that node's `NodeAddr` (`scontrol show node`), read
when the job starts. Services run in pyxis/enroot containers, Apptainer, or directly on the
host (`runtime: bare-metal` in the cluster file's `slurm:` section; `--simulate` runs the
engine simulator that way, with no containers and no GPUs). The script forwards SIGTERM to
every step, so `scancel` stops all ranks; it writes the endpoint and, once the endpoint answers,
a ready line to the job's output; when any rank exits it stops the others and exits with that
rank's status, so the job ends as a whole.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import replace
from typing import Any

from orchestrator.engines.common import HF_CACHE_SOURCE
from orchestrator.plan import Plan
from orchestrator.render import ShellRaw, flag_lines
from orchestrator.spec import ServiceSpec, is_secret_ref
from orchestrator.targets.instances import LOOPBACK, exposed_ports, node_index, rewrite
from orchestrator.targets.settings import SlurmSettings

READY_MARK = "deploy: ready"
ENDPOINT_MARK = "deploy: endpoint"
# The simulator stands in for the engine programs on the host (no image, no GPU).
SIM_LAUNCHER = ShellRaw('"${DEPLOY_SIM_PYTHON:-python3}" -m orchestrator.sim')
_NODE_TOKEN = re.compile("\x00(\\d+)\x00")


def shell_word(value: str, plan: Plan, nodes: dict[str, int], secrets: list[str]) -> str:
    """One shell word: literal text single-quoted, node addresses as `"${NODE_ADDR[i]}"`,
    secret references double-quoted so the shell expands them at run time."""
    if is_secret_ref(value, secrets):
        return ShellRaw(f'"{value}"')

    def resolve(node: str | None, port: int | None) -> str:
        if node is None or node not in nodes:
            return LOOPBACK
        return f"\x00{nodes[node]}\x00"

    text = rewrite(value, plan, resolve)
    if "\x00" not in text:
        return text
    parts = _NODE_TOKEN.split(text)
    out = []
    for position, part in enumerate(parts):
        if position % 2:
            out.append(f'"${{NODE_ADDR[{part}]}}"')
        elif part:
            out.append(shlex.quote(part))
    return ShellRaw("".join(out))


def _program(spec: ServiceSpec) -> list[str]:
    """The host-side argv: container paths of bind-mounted directories as host paths."""
    argv = [*(spec.entrypoint or []), *spec.command]
    for mount in spec.mounts:
        if mount.source.startswith("${") or mount.source.startswith("./"):
            continue
        argv = [
            mount.source + word[len(mount.target) :]
            if word == mount.target or word.startswith(mount.target + "/")
            else word
            for word in argv
        ]
    if spec.network_mode == "bridge" and spec.ports and "--host" in argv:
        # On the host (or a pyxis container, which shares the host's network) bind where the
        # container's port was published.
        argv[argv.index("--host") + 1] = spec.ports[0].host_ip
    return argv


def _mount_source(source: str) -> str:
    if source == HF_CACHE_SOURCE:
        return "${HF_HOME:-$HOME/.cache/huggingface}"
    if source.startswith("./"):
        return "$RUN_DIR/" + source[2:]
    return source


class _Script:
    def __init__(
        self, plan: Plan, services: list[ServiceSpec], settings: SlurmSettings, simulate: bool
    ) -> None:
        self.plan = plan
        self.services = services
        self.settings = settings
        self.simulate = simulate
        self.runtime = "bare-metal" if simulate else settings.runtime
        self.nodes = node_index(plan, services)
        self.secrets = sorted({name for spec in services for name in spec.secret_env})
        self.claimed: dict[str, set[int]] = {}

    def word(self, value: str) -> str:
        return shell_word(value, self.plan, self.nodes, self.secrets)

    def mount_words(self, spec: ServiceSpec) -> list[str]:
        """`SOURCE:TARGET[:ro]` per mount, for --container-mounts or --bind."""
        words = []
        for mount in spec.mounts:
            if mount.source.startswith("./"):
                source = "$RUN_DIR/" + self.conf_file(spec)
            else:
                source = _mount_source(mount.source)
            suffix = ":ro" if mount.read_only else ""
            words.append(f"{source}:{mount.target}{suffix}")
        return words

    def conf_file(self, spec: ServiceSpec) -> str:
        return f"$SLURM_JOB_ID.{spec.name}.conf"

    def step(self, spec: ServiceSpec) -> dict[str, Any]:
        index = self.nodes[spec.node]
        srun: list[str] = [
            "srun",
            "--nodes=1",
            "--ntasks=1",
            ShellRaw(f'--nodelist="${{NODES[{index}]}}"'),
            f"--job-name={spec.name}",
            ShellRaw(f'--output="$RUN_DIR/$SLURM_JOB_ID.{spec.name}.log"'),
        ]
        if spec.gpus and not self.simulate:
            claimed = self.claimed.setdefault(spec.node, set())
            if claimed & set(spec.gpus):
                # The same GPUs as an earlier step (vLLM's API server beside its Ray head):
                # share that step's allocation rather than ask for more.
                srun.append("--overlap")
            else:
                srun.append(f"--gres=gpu:{len(spec.gpus)}")
                claimed.update(spec.gpus)
        argv = _program(spec)
        lb_conf = spec.role == "lb"
        if lb_conf:  # nginx reads the configuration the job writes
            argv = [argv[0], "-c", "\x01", *argv[1:]]
        words = [self.word(word) for word in argv]
        if lb_conf:
            position = words.index("\x01")
            words[position] = ShellRaw(f'"$RUN_DIR/{self.conf_file(spec)}"')
        prefix: list[str] = []
        if self.runtime == "pyxis":
            mounts = ",".join(self.mount_words(spec))
            srun.append(f"--container-image={spec.image}")
            if mounts:
                srun.append(ShellRaw(f'--container-mounts="{mounts}"'))
        elif self.runtime == "apptainer":
            prefix = ["apptainer", "exec"]
            if spec.gpus:
                prefix.append("--nv")
            for bind in self.mount_words(spec):
                prefix += ["--bind", ShellRaw(f'"{bind}"')]
            prefix.append(f"docker://{spec.image}")
        elif self.simulate:
            prefix = [SIM_LAUNCHER]
        env = [self.env_word(key, value, spec) for key, value in spec.environment.items()]
        probe = spec.probe
        program = [*prefix, *words]
        head = len(prefix) + len(spec.entrypoint or [])
        if head < len(program) and not str(program[head]).startswith("-"):
            head += 1  # vLLM's positional model, or the program itself
        lines = [[*env, srun[0]], *[[option] for option in srun[1:]]]
        lines += flag_lines(program, head)
        return {
            "name": spec.name,
            "function": "start_" + re.sub(r"[^A-Za-z0-9_]", "_", spec.name),
            "lines": lines,
            "waits": [self.wait(name) for name in spec.depends_on],
            "http": probe.kind == "http",
            "conf": self.nginx_conf(spec) if lb_conf else None,
            "conf_file": self.conf_file(spec),
        }

    def env_word(self, key: str, value: str, spec: ServiceSpec) -> str:
        if is_secret_ref(value, spec.secret_env):
            return ShellRaw(f'{key}="{value}"')
        word = self.word(value)
        quoted = word if isinstance(word, ShellRaw) else shlex.quote(word)
        return ShellRaw(f"{key}={quoted}")

    def wait(self, name: str) -> dict[str, Any]:
        spec = next(other for other in self.services if other.name == name)
        target = self.probe_target(spec)
        if spec.probe.kind != "http":
            # No HTTP server (a Ray head): wait until its first port accepts connections.
            ports = exposed_ports(spec)
            target.update(port=ports[0] if ports else None, path=None)
        return {"name": name, **target}

    def probe_target(self, spec: ServiceSpec) -> dict[str, Any]:
        """Where the batch script (on the job's first node) checks the service's HTTP port."""
        probe = spec.probe
        argv = _program(spec)
        if spec.role == "lb":  # nginx listens where nginx.conf says
            bind = "0.0.0.0" if self.plan.request.public else LOOPBACK
        else:
            bind = argv[argv.index("--host") + 1] if "--host" in argv else "0.0.0.0"
        index = self.nodes[spec.node]
        host = f"${{NODE_ADDR[{index}]}}" if bind != LOOPBACK or index else LOOPBACK
        budget = probe.start_period_s + probe.interval_s * (probe.retries + 1)
        return {"host": host, "port": probe.port, "path": probe.path or "/", "budget": budget}

    def nginx_conf(self, spec: ServiceSpec) -> str:
        """nginx.conf with the engines' node addresses expanded by the job (a heredoc)."""
        from orchestrator.engines.routers import nginx_settings
        from orchestrator.render import environment

        settings = nginx_settings(self.plan, self.services)
        assert settings is not None
        by_address = {node.address: node.name for node in self.plan.hardware.node_list}
        upstreams = [
            replace(upstream, host=f"\x00{self.nodes[by_address[upstream.host]]}\x00")
            if upstream.host in by_address
            else upstream
            for upstream in settings.upstreams
        ]
        header = {
            "deployment": self.plan.name,
            "node": "slurm",
            "plan_hash": self.plan.plan_hash(),
        }
        text: str = (
            environment()
            .get_template("nginx.conf.j2")
            .render(nginx=replace(settings, upstreams=upstreams), **header)
        )
        text = text.replace("\\", "\\\\").replace("$", "\\$").replace("`", "\\`")
        return _NODE_TOKEN.sub(lambda match: f"${{NODE_ADDR[{match.group(1)}]}}", text)

    def entry(self) -> ServiceSpec:
        fronts = [spec for spec in self.services if spec.role in ("router", "lb")]
        if fronts:
            return fronts[0]
        return next(spec for spec in self.services if spec.probe.port)

    def context(self, slug: str) -> dict[str, Any]:
        per_node: dict[str, int] = {}
        # GPUs by id: services that share GPUs (a Ray head and vLLM's API server) count once.
        gpu_ids: dict[str, set[int]] = {}
        for spec in self.services:
            per_node[spec.node] = per_node.get(spec.node, 0) + 1
            gpu_ids.setdefault(spec.node, set()).update(spec.gpus or [])
        gpus = {node: len(ids) for node, ids in gpu_ids.items()}
        directives = [
            f"--job-name={slug}",
            f"--nodes={len(self.nodes)}",
            f"--ntasks-per-node={max(per_node.values())}",
            f"--time={self.settings.time_limit}",
            f"--output={slug}-%j.out",
            # Requeued (not failed) when a node fails under it.
            "--requeue",
        ]
        if self.settings.partition:
            directives.append(f"--partition={self.settings.partition}")
        if self.settings.account:
            directives.append(f"--account={self.settings.account}")
        if not self.simulate and max(gpus.values()) > 0:
            directives += [f"--gpus-per-node={max(gpus.values())}", "--exclusive"]
        entry = self.entry()
        target = self.probe_target(entry)
        steps = [self.step(spec) for spec in self.services]
        return {
            "deployment": self.plan.name,
            "plan_hash": self.plan.plan_hash(),
            "runtime": self.runtime,
            "directives": directives,
            "nodes": len(self.nodes),
            "steps": steps,
            "entry": {"name": entry.name, **target},
            "ready_mark": READY_MARK,
            "endpoint_mark": ENDPOINT_MARK,
        }


def batch_script(
    plan: Plan,
    services: list[ServiceSpec],
    settings: SlurmSettings,
    slug: str,
    *,
    simulate: bool = False,
) -> str:
    from orchestrator.render import environment

    context = _Script(plan, services, settings, simulate).context(slug)
    text: str = environment().get_template("slurm/job.sbatch.j2").render(**context)
    return text
