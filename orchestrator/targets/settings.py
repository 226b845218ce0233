"""Settings of the Kubernetes and Slurm targets: the `kubernetes:` and `slurm:` sections of a
cluster file, then the command-line options that override them.

```yaml
kubernetes:
  namespace: inference              # default: "default"
  hf_cache: {pvc: hf-cache}         # or {host_path: /data/hf}; the Hugging Face cache volume
                                    # (a PVC must be ReadWriteMany: every pod mounts it;
                                    # state its access_mode: if it is another)
  host_network: false               # pods on the node's network (RDMA fabrics often need it)
  rdma_resource: rdma/rdma_shared_device_a   # requested by pods whose traffic crosses nodes
  secret: my-secrets                # the Secret holding HF_TOKEN and API keys
slurm:
  partition: gpu                    # default: the cluster's default partition
  time_limit: "24:00:00"
  account: null
  runtime: pyxis                    # pyxis | apptainer | bare-metal
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from orchestrator.base import Strict
from orchestrator.errors import HardwareError

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_TIME_LIMIT = r"^(\d+-)?\d+(:\d{2}){0,2}$|^(infinite|UNLIMITED)$"


class HfCache(Strict):
    """Where the Hugging Face cache lives: a PersistentVolumeClaim, or a directory on the node."""

    pvc: str | None = Field(default=None, pattern=_DNS_LABEL)
    host_path: str | None = Field(default=None, pattern=r"^/")
    # The claim's access mode, as created: every pod of the deployment mounts it, on as many
    # nodes, which ReadWriteOnce (one node) does not allow; checked at render.
    access_mode: Literal["ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce"] = "ReadWriteMany"


class KubernetesSettings(Strict):
    namespace: str = Field(default="default", pattern=_DNS_LABEL)
    hf_cache: HfCache = HfCache(pvc="hf-cache")
    host_network: bool = False
    rdma_resource: str = Field(
        default="rdma/rdma_shared_device_a", pattern=r"^[a-z0-9.-]+/[A-Za-z0-9._-]+$"
    )
    secret: str | None = Field(default=None, pattern=_DNS_LABEL)


class SlurmSettings(Strict):
    partition: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+$")
    time_limit: str = Field(default="24:00:00", pattern=_TIME_LIMIT)
    account: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+$")
    runtime: Literal["pyxis", "apptainer", "bare-metal"] = "pyxis"


class TargetSettings(Strict):
    kubernetes: KubernetesSettings = KubernetesSettings()
    slurm: SlurmSettings = SlurmSettings()


def load_settings(cluster: Path | None, overrides: dict[str, dict[str, Any]]) -> TargetSettings:
    """The cluster file's sections (when given), then `overrides` (options that were set)."""
    sections: dict[str, dict[str, Any]] = {"kubernetes": {}, "slurm": {}}
    if cluster is not None:
        import yaml

        try:
            document = yaml.safe_load(cluster.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise HardwareError(f"cannot read {cluster}: {error}", "fix the cluster file") from None
        for name in sections:
            value = document.get(name) if isinstance(document, dict) else None
            if value is not None and not isinstance(value, dict):
                raise HardwareError(
                    f"{cluster}: `{name}` must be a mapping",
                    "see the README section of that target",
                )
            sections[name].update(value or {})
    for name, values in overrides.items():
        sections[name].update({key: value for key, value in values.items() if value is not None})
    try:
        return TargetSettings.model_validate(sections)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        source = f"{cluster}: " if cluster is not None else ""
        raise HardwareError(
            f"{source}target setting {where}: {first['msg']}",
            "fix the `kubernetes:`/`slurm:` section or the option",
        ) from None
