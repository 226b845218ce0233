"""Cut the schema fixtures the Kubernetes manifest tests validate against out of their sources.

    python extract.py CORE_V1.json APPS_V1.json LWS_CRD.yaml

CORE_V1.json and APPS_V1.json are Kubernetes' OpenAPI v3 documents for `api/v1` and
`apis/apps/v1` (see README.md for where they come from); LWS_CRD.yaml is LeaderWorkerSet's
CustomResourceDefinition. Writes `kubernetes-openapi-subset.json` (the component schemas that
Deployment, Service, ConfigMap and Namespace reach, unchanged) and `lws-v1-schema.json` (the
CRD's `v1` `openAPIV3Schema`, unchanged).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOTS = (
    "io.k8s.api.apps.v1.Deployment",
    "io.k8s.api.core.v1.Service",
    "io.k8s.api.core.v1.ConfigMap",
    "io.k8s.api.core.v1.Namespace",
)
PREFIX = "#/components/schemas/"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"][len(PREFIX) :]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def main(core: str, apps: str, crd: str) -> None:
    schemas: dict[str, Any] = {}
    for source in (core, apps):
        schemas.update(json.loads(Path(source).read_text())["components"]["schemas"])
    keep: dict[str, Any] = {}
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name not in keep:
            keep[name] = schemas[name]
            todo += _refs(schemas[name])
    here = Path(__file__).parent
    subset = {"components": {"schemas": dict(sorted(keep.items()))}}
    (here / "kubernetes-openapi-subset.json").write_text(json.dumps(subset, indent=1) + "\n")
    document = yaml.safe_load(Path(crd).read_text())
    version = next(v for v in document["spec"]["versions"] if v["name"] == "v1")
    schema = version["schema"]["openAPIV3Schema"]
    (here / "lws-v1-schema.json").write_text(json.dumps(schema, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
