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

from orchestrator.engines.common import HF_CACHE_SOURCE, HF_CACHE_TARGET
from orchestrator.engines.jit_cache import is_home_path
from orchestrator.plan import Plan
from orchestrator.spec import Mount, ServiceSpec, is_secret_ref
from orchestrator.targets.compose.render import ShellRaw, flag_lines, shell_quote
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


def _program(spec: ServiceSpec, *, on_host: bool = True) -> list[str]:
    """The argv; on the host (bare metal), container paths of bind-mounted directories become
    host paths (in a container the mounts put them where the argv names them)."""
    argv = [*(spec.entrypoint or []), *spec.command]
    for mount in spec.mounts if on_host else []:
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
    """A mount source as an absolute path the job's shell expands: pyxis and Apptainer take no
    `~`, and bash expands none inside double quotes."""
    if source == HF_CACHE_SOURCE:
        return "$HF_CACHE"
    if is_home_path(source):
        # $HOST_HOME: the job's $HOME, kept apart from the HOME a container step is given.
        return "$HOST_HOME/" + source[2:]
    if source.startswith("./"):
        return "$RUN_DIR/" + source[2:]
    return source


def _created_by_job(mount: Mount) -> bool:
    """Cache directories the job creates on every node before any step mounts them (a model
    directory of the user's must already exist: creating it would hide a typo)."""
    return mount.source == HF_CACHE_SOURCE or is_home_path(mount.source)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


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
        self.slug = ""

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

    def container_name(self, image: str) -> str:
        """pyxis's name for the image's container on each node: imported once per node by the
        job's first step, then reused by every step (pyxis skips the import of a named
        container that exists; the default scope ends it with the job)."""
        return _safe_name(f"deploy-{self.slug}-{image}")[:120]

    def sif(self, image: str) -> str:
        """Apptainer's image file for `image` on each node: node-local, one per job."""
        return f"${{TMPDIR:-/tmp}}/$SLURM_JOB_ID.{_safe_name(image)}.sif"

    def overlaps(self, spec: ServiceSpec) -> bool:
        """Steps that share resources: CPU-only fronts (nginx, routers) beside the engines, and
        a service on GPUs an earlier step holds (vLLM's API server beside its Ray head)."""
        if spec.role in ("router", "lb") and not spec.gpus:
            return True
        if spec.gpus and not self.simulate:
            earlier = self.services[: self.services.index(spec)]
            held = {gpu for other in earlier if other.node == spec.node for gpu in other.gpus or []}
            return bool(held & set(spec.gpus))
        return False

    def weight(self, spec: ServiceSpec) -> int:
        return len(spec.gpus) if spec.gpus and not self.simulate else 1

    def node_weight(self, node: str) -> int:
        return sum(
            self.weight(spec)
            for spec in self.services
            if spec.node == node and not self.overlaps(spec)
        )

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
        share: list[int] | None = None
        if self.overlaps(spec):
            srun.append("--overlap")
        else:
            # Only this step's share of the node (--exact): without it a step takes every CPU
            # of the job there and the node's next step waits forever ("Requested nodes are
            # busy").
            share = [self.weight(spec), self.node_weight(spec.node)]
            srun.append(ShellRaw('"${SHARE[@]}"'))
            if spec.gpus and not self.simulate:
                srun.append(f"--gres=gpu:{len(spec.gpus)}")
        on_host = self.runtime == "bare-metal"
        argv = _program(spec, on_host=on_host)
        lb_conf = spec.role == "lb"
        if lb_conf and on_host:  # nginx reads the configuration the job writes
            argv = [argv[0], "-c", "\x01", *argv[1:]]
        words = [self.word(word) for word in argv]
        if "\x01" in words:
            position = words.index("\x01")
            words[position] = ShellRaw(f'"$RUN_DIR/{self.conf_file(spec)}"')
        prefix: list[str] = []
        environment = dict(spec.environment)
        if self.runtime == "pyxis":
            mounts = ",".join(self.mount_words(spec))
            srun += [
                f"--container-image={spec.image}",
                f"--container-name={self.container_name(spec.image)}",
                # Root inside the container, as the images and the mount targets under /root
                # expect; no home directory mounted over /root's.
                "--container-remap-root",
                "--no-container-mount-home",
                "--container-env=HOME,HF_HOME",
            ]
            if mounts:
                srun.append(ShellRaw(f'--container-mounts="{mounts}"'))
            environment = {"HOME": "/root", **environment}
        elif self.runtime == "apptainer":
            prefix = ["apptainer", "exec"]
            if spec.gpus:
                prefix.append("--nv")
            for bind in self.mount_words(spec):
                prefix += ["--bind", ShellRaw(f'"{bind}"')]
            # The node's own copy, converted once by the job's prepare step.
            prefix.append(ShellRaw(f'"{self.sif(spec.image)}"'))
        elif self.simulate:
            prefix = [SIM_LAUNCHER]
        if not on_host and any(mount.source == HF_CACHE_SOURCE for mount in spec.mounts):
            # The submitting shell's HF_HOME (exported to every step) names a host path.
            environment["HF_HOME"] = HF_CACHE_TARGET
        env = [self.env_word(key, value, spec) for key, value in environment.items()]
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
            "share": share,
            "lines": lines,
            "waits": [self.wait(name) for name in spec.depends_on],
            "http": probe.kind == "http",
            "conf": self.nginx_conf(spec) if lb_conf else None,
            "conf_file": self.conf_file(spec),
        }

    def prepare(self) -> dict[str, Any]:
        """What the job does once on every node before the first step: create the cache
        directories the steps mount, and (pyxis) import each image into its named container."""
        directories: list[str] = []
        for spec in self.services:
            for mount in spec.mounts:
                if _created_by_job(mount):
                    source = _mount_source(mount.source)
                    if source not in directories:
                        directories.append(source)
        images: list[dict[str, str]] = []
        if self.runtime in ("pyxis", "apptainer"):
            seen: set[str] = set()
            for spec in self.services:
                if spec.image not in seen:
                    seen.add(spec.image)
                    images.append(
                        {
                            "image": spec.image,
                            "name": self.container_name(spec.image),
                            "sif": self.sif(spec.image),
                        }
                    )
        return {
            "directories": [ShellRaw(f'"{directory}"') for directory in directories],
            "images": images,
        }

    def env_word(self, key: str, value: str, spec: ServiceSpec) -> str:
        if is_secret_ref(value, spec.secret_env):
            return ShellRaw(f'{key}="{value}"')
        word = self.word(value)
        quoted = shell_quote(word)
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
        argv = _program(spec, on_host=self.runtime == "bare-metal")
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
        from orchestrator.targets.compose.render import environment

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
        self.slug = slug
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
            # Whole nodes, all their memory: each step then takes its share (--exact).
            directives += [f"--gpus-per-node={max(gpus.values())}", "--exclusive", "--mem=0"]
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
            "prepare": self.prepare(),
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
    from orchestrator.targets.compose.render import environment

    context = _Script(plan, services, settings, simulate).context(slug)
    text: str = environment().get_template("slurm/job.sbatch.j2").render(**context)
    return text
