"""Kubernetes manifests from the same `ServiceSpec`s as the compose files.

- a multi-node engine instance is one LeaderWorkerSet (`size` = its nodes; the leader runs
  rank 0, workers take their rank from `LWS_WORKER_INDEX` and reach rank 0 at
  `LWS_LEADER_ADDRESS`; the group is recreated when any pod restarts; workers are created with
  the leader, not once it is ready: rank 0 serves HTTP only after every rank has joined);
- a pool whose every node serves HTTP (vLLM's hybrid load balancing, the prefill and decode
  pools of wide-EP disaggregation) is one LeaderWorkerSet whose every pod runs an API server
  with its start rank from its worker index, behind one Service over all of its pods, as
  llm-d's wide-EP guide runs them (llm-d/llm-d guides/wide-ep-lws);
- a single-node engine instance, the router and the load balancer are Deployments;
- every instance with an HTTP port gets a Service, and addresses of other instances in a
  command line (router upstreams, PD bootstrap hosts) become those Services' names.

The engine command lines are the renderers' own: only node addresses, rank numbers and secret
references change spelling (`$(VAR)` is Kubernetes' expansion; literal `$` is doubled).
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from functools import partial
from typing import Any

from orchestrator.engines.common import HF_CACHE_SOURCE, RAY_ENTRYPOINT
from orchestrator.engines.jit_cache import is_home_path
from orchestrator.errors import InputError
from orchestrator.group_health import liveness_window_s
from orchestrator.plan import Plan
from orchestrator.spec import (
    LABEL_DEPLOYMENT,
    LABEL_PLAN_HASH,
    LABEL_ROLE,
    LABEL_SERVICE,
    ServiceSpec,
    is_secret_ref,
)
from orchestrator.targets.instances import (
    OWN_ADDRESS_ENV,
    Instance,
    exposed_ports,
    instances,
    rewrite,
    serving_instance,
)
from orchestrator.targets.settings import KubernetesSettings

LWS_API = "leaderworkerset.x-k8s.io/v1"
LWS_WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
LEADER_ADDRESS = "$(LWS_LEADER_ADDRESS)"
WORKER_INDEX = "$(LWS_WORKER_INDEX)"
POD_IP = "$(POD_IP)"
MANAGED_BY = {"app.kubernetes.io/managed-by": "deploy"}
_RANK_FLAGS = ("--node-rank",)
_NODE_INTERFACE_ENV = frozenset({"NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"})
_START_RANK = "--data-parallel-start-rank"
_SIZE = re.compile(r"^(\d+)([kmg]?)b?$", re.IGNORECASE)


def object_name(slug: str, service: str) -> str:
    """A DNS-1035 label (Service names must start with a letter), at most 63 characters."""
    name = f"{slug}-{service}".lower().replace(".", "-").replace("_", "-")
    name = re.sub(r"-+", "-", name)
    if not name[0].isalpha():
        name = "d-" + name
    if len(name) > 52:  # LWS appends -<group>-<index> to pod names
        raise InputError(
            f"the Kubernetes name {name!r} is too long",
            "pass a shorter --name for the deployment",
        )
    return name


def quantity(size: str) -> str:
    """A compose size (16g, 64m) as a Kubernetes quantity (16Gi, 64Mi)."""
    match = _SIZE.match(size)
    if not match:
        raise InputError(f"cannot read the size {size!r}", "use a size such as 16g")
    suffix = {"": "", "k": "Ki", "m": "Mi", "g": "Gi"}[match.group(2).lower()]
    return match.group(1) + suffix


GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
# What the scheduler reserves beside the GPUs: engines run a tokenizer, the scheduler loop
# and CUDA-graph capture threads per GPU, and hold /dev/shm (a memory-backed emptyDir that
# counts against the pod's memory); fronts need little.
CPUS_PER_GPU = 4
MEMORY_PER_GPU_GIB = 16
FRONT_REQUESTS = {"cpu": "1", "memory": "1Gi"}


def requests(spec: ServiceSpec) -> dict[str, str]:
    if not spec.gpus:
        return dict(FRONT_REQUESTS)
    gpus = len(spec.gpus)
    shm = quantity(spec.shm_size)
    shm_gib = int(shm[:-2]) if shm.endswith("Gi") else 0
    return {"cpu": str(CPUS_PER_GPU * gpus), "memory": f"{MEMORY_PER_GPU_GIB * gpus + shm_gib}Gi"}


def gpu_products(plan: Plan) -> list[str]:
    """The values of `nvidia.com/gpu.product` for the plan's GPU (its NVML names)."""
    return list(plan.hardware.gpu_products)


def escape(value: str) -> str:
    """Kubernetes expands `$(VAR)` in command, args and env values: keep literal dollars."""
    return value.replace("$", "$$")


class _Manifests:
    """The manifests of one deployment; see the module docstring."""

    def __init__(
        self, plan: Plan, services: list[ServiceSpec], settings: KubernetesSettings, slug: str
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.slug = slug
        self.groups = instances(services)
        self.secret = settings.secret or f"{slug}-secrets"
        self.secrets = sorted({name for spec in services for name in spec.secret_env})
        for spec in services:
            if spec.entrypoint and tuple(spec.entrypoint[: len(RAY_ENTRYPOINT)]) == RAY_ENTRYPOINT:
                raise InputError(
                    "a Ray cluster (--distributed-backend ray) is not rendered for Kubernetes",
                    "use --distributed-backend mp, whose ranks LeaderWorkerSet runs",
                )

    # ----------------------------------------------------------------------------------------
    # Words

    def workload_name(self, group: Instance) -> str:
        return object_name(self.slug, group.name)

    def service_name(self, group: Instance) -> str:
        """The client Service. A LeaderWorkerSet's own name is taken: its controller creates
        the headless Service of that name that `LWS_LEADER_ADDRESS` resolves through."""
        name = self.workload_name(group)
        return name + "-api" if group.multi_node else name

    def _resolver(self, spec: ServiceSpec, group: Instance) -> Any:
        def resolve(node: str | None, port: int | None) -> str:
            if node is None:  # loopback: a bind address, or a front reaching its own node
                if port is None:
                    return POD_IP
                node = spec.node
            if spec is group.head and node == spec.node and port is None:
                return POD_IP  # the leader's own address: a bind address
            if group.multi_node and node == group.head.node:
                return LEADER_ADDRESS
            if node == spec.node and port is None:
                return POD_IP
            target = serving_instance(self.groups, node, port, asking=spec)
            if target is group:
                return POD_IP
            return self.service_name(target)

        return resolve

    def word(self, value: str, spec: ServiceSpec, group: Instance) -> str:
        if is_secret_ref(value, spec.secret_env):
            return f"$({value[2:-1]})"
        return rewrite(escape(value), self.plan, self._resolver(spec, group))

    def words(self, spec: ServiceSpec, group: Instance, *, worker: bool) -> list[str]:
        words = list(spec.command)
        out: list[str] = []
        skip = False
        for position, value in enumerate(words):
            if skip:
                skip = False
                continue
            previous = words[position - 1] if position else ""
            if worker and previous in _RANK_FLAGS:
                out.append(WORKER_INDEX)
            elif worker and value == _START_RANK:
                skip = True  # computed by the shell wrapper from the worker index
            else:
                out.append(self.word(value, spec, group))
        if spec.role in ("router", "lb"):
            out = _without_repeated_pairs(out)
        return out

    def environment(self, spec: ServiceSpec, group: Instance, words: list[str]) -> list[Any]:
        env: list[dict[str, Any]] = []
        plain = []
        for key, value in spec.environment.items():
            if key in _NODE_INTERFACE_ENV and not self.settings.host_network:
                # The cluster file names the node's interfaces; a pod on the pod network has
                # only its own (eth0), and NCCL and Gloo find it unaided.
                continue
            if key in OWN_ADDRESS_ENV:
                plain.append({"name": key, "value": POD_IP})
            elif is_secret_ref(value, spec.secret_env):
                plain.append({"name": key, "value": f"$({value[2:-1]})"})
            else:
                plain.append({"name": key, "value": self.word(value, spec, group)})
        uses_pod_ip = any(POD_IP in item["value"] for item in plain) or any(
            POD_IP in word for word in words
        )
        if uses_pod_ip:
            env.append({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
        for name in spec.secret_env:
            ref: dict[str, Any] = {"name": self.secret, "key": name}
            if name == "HF_TOKEN":
                ref["optional"] = True  # public models need no token
            env.append({"name": name, "valueFrom": {"secretKeyRef": ref}})
        return env + plain

    # ----------------------------------------------------------------------------------------
    # Pods

    def labels(self, group: Instance) -> dict[str, str]:
        return {
            LABEL_DEPLOYMENT: self.slug,
            LABEL_SERVICE: group.name,
            LABEL_ROLE: group.role,
            LABEL_PLAN_HASH: self.plan.plan_hash(),
            **MANAGED_BY,
        }

    def selector(self, group: Instance) -> dict[str, str]:
        return {LABEL_DEPLOYMENT: self.slug, LABEL_SERVICE: group.name}

    def probes(self, spec: ServiceSpec) -> dict[str, Any]:
        probe = spec.probe
        if probe.kind != "http" or probe.port is None:
            return {}
        action = {"httpGet": {"path": probe.path or "/", "port": probe.port}}
        timing = {"timeoutSeconds": probe.timeout_s}
        # Loading weights can take many minutes: the startup probe covers the whole budget,
        # and readiness and liveness only start counting once it has passed.
        startup = {
            **action,
            **timing,
            "periodSeconds": probe.interval_s,
            "failureThreshold": math.ceil(probe.start_period_s / probe.interval_s) + probe.retries,
        }
        steady = {**action, **timing, "periodSeconds": probe.interval_s}
        # Busy is not dead: a saturated engine answers late. Readiness takes it out of the
        # Service at once; liveness restarts it only after the same window deploy's own
        # supervisor allows (orchestrator.group_health.liveness_window_s).
        window = liveness_window_s(probe.interval_s, probe.retries)
        return {
            "startupProbe": startup,
            "readinessProbe": {**steady, "failureThreshold": probe.retries},
            "livenessProbe": {
                **steady,
                "timeoutSeconds": max(probe.timeout_s, 10),
                "failureThreshold": math.ceil(window / probe.interval_s),
            },
        }

    def container(self, spec: ServiceSpec, group: Instance, *, worker: bool) -> dict[str, Any]:
        args = self.words(spec, group, worker=worker)
        entrypoint = [escape(word) for word in spec.entrypoint or []]
        if worker and _START_RANK in spec.command:
            start = int(spec.command[spec.command.index(_START_RANK) + 1])
            local = start // spec.rank
            script = f'exec "$$@" {_START_RANK} "$$((LWS_WORKER_INDEX * {local}))"'
            entrypoint = ["/bin/sh", "-c", script, "sh", *entrypoint]
        container: dict[str, Any] = {"name": spec.role, "image": spec.image}
        if entrypoint:
            container["command"] = entrypoint
        container["args"] = args
        env = self.environment(spec, group, args)
        if env:
            container["env"] = env
        ports = exposed_ports(spec)
        if ports:
            container["ports"] = [{"containerPort": port} for port in ports]
        limits: dict[str, Any] = {}
        if spec.gpus:
            limits["nvidia.com/gpu"] = len(spec.gpus)
        if spec.devices:
            limits[self.settings.rdma_resource] = 1
        container["resources"] = {"requests": requests(spec)}
        if limits:
            container["resources"]["limits"] = limits
        container["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
        for name, mount in self.mounts(spec):
            volume_mount = {"name": name, "mountPath": mount.target, "readOnly": mount.read_only}
            if name == "config":  # one file of the ConfigMap, at the path the spec names
                volume_mount["subPath"] = mount.source.rsplit("/", 1)[-1]
            container["volumeMounts"].append(volume_mount)
        if spec.privileged:
            # DeepEP over IBGDA maps the NIC's doorbells for the GPU: the compose files run
            # these services privileged for the same reason (engines/privileges.py).
            container["securityContext"] = {"privileged": True}
        elif spec.cap_add:
            container["securityContext"] = {"capabilities": {"add": sorted(spec.cap_add)}}
        container.update(self.probes(spec))
        return container

    def mounts(self, spec: ServiceSpec) -> list[tuple[str, Any]]:
        named = []
        for index, mount in enumerate(spec.mounts):
            if mount.source == HF_CACHE_SOURCE:
                named.append(("hf-cache", mount))
            elif mount.source.startswith("./"):
                named.append(("config", mount))
            elif is_home_path(mount.source):
                named.append((f"jit-{index}", mount))
            else:
                named.append((f"model-{index}", mount))
        return named

    def volumes(self, spec: ServiceSpec, group: Instance) -> list[dict[str, Any]]:
        volumes: list[dict[str, Any]] = [
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": quantity(spec.shm_size)}}
        ]
        for name, mount in self.mounts(spec):
            if name == "hf-cache":
                cache = self.settings.hf_cache
                if cache.host_path:
                    source: dict[str, Any] = {
                        "hostPath": {"path": cache.host_path, "type": "DirectoryOrCreate"}
                    }
                else:
                    source = {"persistentVolumeClaim": {"claimName": cache.pvc or "hf-cache"}}
                volumes.append({"name": name, **source})
            elif name == "config":
                volumes.append(
                    {"name": name, "configMap": {"name": self.workload_name(group) + "-config"}}
                )
            elif name.startswith("jit-"):
                # Kubernetes expands no `~` and a hostPath must be absolute: the JIT caches
                # live as long as the pod (a restarted container keeps them).
                volumes.append({"name": name, "emptyDir": {}})
            else:
                volumes.append(
                    {"name": name, "hostPath": {"path": mount.source, "type": "Directory"}}
                )
        return volumes

    def pod(self, spec: ServiceSpec, group: Instance, *, worker: bool) -> dict[str, Any]:
        labels = self.labels(group)
        pod: dict[str, Any] = {}
        if self.settings.host_network:
            pod["hostNetwork"] = True
            pod["dnsPolicy"] = "ClusterFirstWithHostNet"
        products = gpu_products(self.plan) if spec.gpus else []
        if products:
            # Only nodes with the planned GPU: the plan's memory and speed are that GPU's.
            # GPU feature discovery labels each node with its NVML name, spaces as dashes.
            term = {"key": GPU_PRODUCT_LABEL, "operator": "In", "values": products}
            pod["affinity"] = {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [term]}]
                    }
                }
            }
        pod["containers"] = [self.container(spec, group, worker=worker)]
        pod["volumes"] = self.volumes(spec, group)
        return {"metadata": {"labels": labels}, "spec": pod}

    def metadata(self, name: str, group: Instance) -> dict[str, Any]:
        return {"name": name, "namespace": self.settings.namespace, "labels": self.labels(group)}

    # ----------------------------------------------------------------------------------------
    # Objects

    def workload(self, group: Instance, replicas: int = 1) -> dict[str, Any]:
        name = self.workload_name(group)
        if not group.multi_node:
            return {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": self.metadata(name, group),
                "spec": {
                    "replicas": 1,
                    # GPUs are not shared: stop the old pod before starting its replacement.
                    "strategy": {"type": "Recreate"},
                    "selector": {"matchLabels": self.selector(group)},
                    "template": self.pod(group.head, group, worker=False),
                },
            }
        self.check_workers(group)
        return {
            "apiVersion": LWS_API,
            "kind": "LeaderWorkerSet",
            "metadata": self.metadata(name, group),
            "spec": {
                "replicas": replicas,
                # Workers start with the leader: rank 0 answers its HTTP probes only once every
                # rank has joined, so LeaderReady (workers created once the leader is Ready)
                # would never create them. Workers wait for rank 0 at the rendezvous anyway.
                "startupPolicy": "LeaderCreated",
                "leaderWorkerTemplate": {
                    "size": len(group.ranks),
                    "restartPolicy": "RecreateGroupOnPodRestart",
                    "leaderTemplate": self.pod(group.head, group, worker=False),
                    "workerTemplate": self.pod(group.ranks[1], group, worker=True),
                },
            },
        }

    def check_workers(self, group: Instance) -> None:
        """LWS stamps every worker from one template: ranks 1.. must agree once their rank
        number is written as the worker index."""
        template = self.container(group.ranks[1], group, worker=True)
        for spec in group.ranks[2:]:
            if self.container(spec, group, worker=True) != template:
                raise InputError(
                    f"the ranks of {group.name} differ beyond their rank number",
                    "pin --tp so every node of the instance holds the same number of GPUs",
                )

    def service(self, group: Instance) -> dict[str, Any] | None:
        ports = exposed_ports(group.head)
        if not ports:
            return None
        selector = self.selector(group)
        if group.multi_node and not group.every_rank_serves:
            selector[LWS_WORKER_INDEX_LABEL] = "0"  # only the leader serves HTTP
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.metadata(self.service_name(group), group),
            "spec": {
                "selector": selector,
                "ports": [
                    {"name": f"port-{port}", "port": port, "targetPort": port} for port in ports
                ],
            },
        }

    def config_map(self, group: Instance, nginx_conf: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": self.metadata(self.workload_name(group) + "-config", group),
            "data": {"nginx.conf": nginx_conf},
        }

    def namespace(self) -> dict[str, Any] | None:
        if self.settings.namespace == "default":
            return None
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": self.settings.namespace, "labels": dict(MANAGED_BY)},
        }


def _without_repeated_pairs(words: list[str]) -> list[str]:
    """A front's `--prefill URL --prefill URL ...` once per URL: the nodes of a hybrid-LB pool
    are one Service in Kubernetes, which spreads the requests over them."""
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    position = 0
    while position < len(words):
        word = words[position]
        value = words[position + 1] if position + 1 < len(words) else None
        if word.startswith("--") and value is not None and not value.startswith("--"):
            if (word, value) not in seen:
                seen.add((word, value))
                out += [word, value]
            position += 2
        else:
            out.append(word)
            position += 1
    return out


def nginx_for_k8s(
    plan: Plan,
    services: list[ServiceSpec],
    slug: str,
    names: dict[str, tuple[str, dict[int, int]]] | None = None,
) -> Any:
    """nginx's upstreams as the engines' Service names (pods reach each other through them);
    `names`: service (spec) name -> the Service that serves it and its ports, where not its
    own group's (replicas of one LeaderWorkerSet)."""
    from orchestrator.engines.routers import nginx_settings

    settings = nginx_settings(plan, services)
    if settings is None:
        return None
    names = names or {}
    by_spec = {spec.name: group for group in instances(services) for spec in group.ranks}
    upstreams = []
    seen: set[tuple[str, int]] = set()
    for upstream in settings.upstreams:
        host, port = object_name(slug, by_spec[upstream.service].name), upstream.port
        if upstream.service in names:
            host, ports = names[upstream.service]
            port = ports.get(port, port)
        if (host, port) not in seen:  # replicas of one LeaderWorkerSet: one Service
            seen.add((host, port))
            upstreams.append(replace(upstream, host=host, port=port))
    listen = settings.listen.rsplit(":", 1)[-1]
    return replace(settings, upstreams=upstreams, listen=listen)


def _check_cache_claim(settings: KubernetesSettings, services: list[ServiceSpec]) -> None:
    """A ReadWriteOnce claim mounts on one node: refuse it for pods that land on several."""
    cache = settings.hf_cache
    if cache.host_path or cache.access_mode != "ReadWriteOnce":
        return
    users = [spec for spec in services if any(m.source == HF_CACHE_SOURCE for m in spec.mounts)]
    if len({spec.node for spec in users}) > 1:
        raise InputError(
            f"the Hugging Face cache claim {cache.pvc or 'hf-cache'} is ReadWriteOnce, but "
            f"pods on {len({spec.node for spec in users})} nodes mount it",
            "use a ReadWriteMany claim, or hf_cache: {host_path: /path/on/each/node}",
        )


def _port_slot(ports: list[int], match: re.Match[str]) -> str:
    return f"\x01{ports.index(int(match.group(1)))}"


def _merged_replicas(builder: _Manifests) -> dict[str, tuple[Instance, int, dict[int, int]]]:
    """Multi-node replicas whose pods are the same but for their names and ports: one
    LeaderWorkerSet with `replicas` (each pod has its own address, so the ports compose gives
    replicas apart are the first replica's). Group name -> (the first of them, their count,
    this group's port -> the first one's)."""
    import json

    first: dict[str, Instance] = {}
    counts: dict[str, int] = {}
    found: dict[str, tuple[Instance, dict[int, int]]] = {}
    for group in builder.groups:
        if not group.multi_node:
            continue
        ports = exposed_ports(group.head)
        shape = json.dumps(builder.workload(group)).replace(
            json.dumps(builder.workload_name(group))[1:-1], "\x00"
        )
        shape = shape.replace(f'"{group.name}"', '"\x00"')
        if ports:
            pattern = re.compile(r"(?<!\d)(" + "|".join(map(str, ports)) + r")(?!\d)")
            shape = pattern.sub(partial(_port_slot, ports), shape)
        leader = first.setdefault(shape, group)
        counts[leader.name] = counts.get(leader.name, 0) + 1
        found[group.name] = (leader, dict(zip(ports, exposed_ports(leader.head), strict=True)))
    return {
        name: (leader, counts[leader.name], port_map) for name, (leader, port_map) in found.items()
    }


def manifests(
    plan: Plan, services: list[ServiceSpec], settings: KubernetesSettings, slug: str
) -> list[tuple[str, list[dict[str, Any]]]]:
    """(file name, documents) per file of DIR/k8s/, in apply order."""
    from orchestrator.targets.compose.render import environment

    builder = _Manifests(plan, services, settings, slug)
    _check_cache_claim(settings, services)
    files: list[tuple[str, list[dict[str, Any]]]] = []
    namespace = builder.namespace()
    if namespace is not None:
        files.append(("00-namespace.yaml", [namespace]))
    merged = _merged_replicas(builder)
    names = {
        spec.name: (builder.service_name(merged[group.name][0]), merged[group.name][2])
        for group in builder.groups
        if group.name in merged
        for spec in group.ranks
    }
    nginx = nginx_for_k8s(plan, services, slug, names)
    for group in builder.groups:
        replicas = 1
        if group.name in merged:
            leader, replicas, _ = merged[group.name]
            if leader is not group:
                continue  # a replica of the LeaderWorkerSet written for `leader`
        documents: list[dict[str, Any]] = []
        if group.role == "lb" and nginx is not None:
            header = {"deployment": plan.name, "node": "kubernetes", "plan_hash": plan.plan_hash()}
            text = environment().get_template("nginx.conf.j2").render(nginx=nginx, **header)
            documents.append(builder.config_map(group, text))
        documents.append(builder.workload(group, replicas))
        service = builder.service(group)
        if service is not None:
            documents.append(service)
        prefix = "20" if group.role in ("router", "lb") else "10"
        files.append((f"{prefix}-{group.name}.yaml", documents))
    return files
