"""Renders of the golden scenarios for the Kubernetes and Slurm targets, and the schemas the
manifests must satisfy (see tests/data/README.md for where they come from)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from orchestrator.engines import build_services
from orchestrator.plan import Plan
from orchestrator.targets.render import Target, render_target
from orchestrator.targets.settings import TargetSettings
from tests.render.conftest import GOLDEN_DIR, SCENARIOS, scenario

KUBERNETES_DATA = Path(__file__).resolve().parent.parent / "data" / "kubernetes"
KUBERNETES_VERSION = "1.33"
# vLLM's Ray backend is rendered for compose and Slurm only (LWS runs native ranks).
K8S_SCENARIOS = [(engine, layout) for engine, layout in SCENARIOS if layout != "2node-ray"]


def render(target: Target, engine: str, layout: str, out: Path, **settings: Any) -> list[Path]:
    plan: Plan = scenario(engine, layout)
    chosen = TargetSettings.model_validate(settings)
    return render_target(target, plan, build_services(plan), out, chosen)


def golden_dir(target: str, engine: str, layout: str) -> Path:
    return GOLDEN_DIR / target / f"{engine}-{layout}"


def _strict(node: Any) -> Any:
    """Refuse fields a schema does not name, as `kubectl apply --validate=strict` and the API
    server's field validation do; `x-kubernetes-preserve-unknown-fields` keeps its meaning."""
    if isinstance(node, dict):
        node = {key: _strict(value) for key, value in node.items()}
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_strict(value) for value in node]
    return node


class Schemas:
    def __init__(self) -> None:
        subset = json.loads((KUBERNETES_DATA / "kubernetes-openapi-subset.json").read_text())
        self.components = _strict(subset)["components"]
        self.lws = _strict(json.loads((KUBERNETES_DATA / "lws-v1-schema.json").read_text()))

    def validator(self, component: str) -> jsonschema.protocols.Validator:
        schema = {"$ref": f"#/components/schemas/{component}", "components": self.components}
        return jsonschema.Draft7Validator(copy.deepcopy(schema))

    def errors(self, document: dict[str, Any]) -> list[str]:
        kind = document.get("kind")
        components = {
            "Deployment": "io.k8s.api.apps.v1.Deployment",
            "Service": "io.k8s.api.core.v1.Service",
            "ConfigMap": "io.k8s.api.core.v1.ConfigMap",
            "Namespace": "io.k8s.api.core.v1.Namespace",
        }
        if kind == "LeaderWorkerSet":
            found = [
                f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in jsonschema.Draft7Validator(self.lws).iter_errors(document)
            ]
            # The CRD leaves metadata and the pod templates' metadata open; Kubernetes checks
            # them as ObjectMeta and the templates as PodTemplateSpec.
            meta = self.validator("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            found += [e.message for e in meta.iter_errors(document["metadata"])]
            pod = self.validator("io.k8s.api.core.v1.PodTemplateSpec")
            templates = document["spec"]["leaderWorkerTemplate"]
            for key in ("leaderTemplate", "workerTemplate"):
                found += [f"{key}: {e.message}" for e in pod.iter_errors(templates[key])]
            return found
        if kind not in components:
            return [f"unexpected kind {kind!r}"]
        return [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in self.validator(components[kind]).iter_errors(document)
        ]


@pytest.fixture(scope="session")
def k8s_schemas() -> Schemas:
    return Schemas()


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
