"""`deploy render --target`: `render_target` writes `DIR/plan.json` and `DIR/k8s/*.yaml` or `DIR/slurm/job.sbatch`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from orchestrator.errors import InputError
from orchestrator.plan import Plan
from orchestrator.spec import ServiceSpec
from orchestrator.targets.settings import TargetSettings

Target = Literal["compose", "k8s", "slurm"]
TARGETS: tuple[Target, ...] = ("compose", "k8s", "slurm")
SLURM_SCRIPT = "job.sbatch"


def _prepare(out_dir: Path, subdir: str) -> Path:
    """DIR must be new, empty, or an earlier render; the target's own directory is replaced."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is not a directory", "pass a new or empty directory to --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "plan.json").is_file():
        raise InputError(
            f"{out_dir} is not empty and holds no earlier render (no deploy plan.json)",
            "pass a new or empty directory to --out",
        )
    target = out_dir / subdir
    if target.is_dir():
        for path in sorted(target.iterdir()):
            if path.is_file() and path.suffix in (".yaml", ".sbatch"):
                path.unlink()
    target.mkdir(parents=True, exist_ok=True)
    return target


def render_target(
    target: Target,
    plan: Plan,
    services: list[ServiceSpec],
    out_dir: Path,
    settings: TargetSettings,
    *,
    simulate: bool = False,
) -> list[Path]:
    """Write the files of `target` under `out_dir`; return their paths, in order."""
    from orchestrator.render import compose_project, environment
    from orchestrator.targets.yaml_text import yaml_document

    slug = compose_project(plan)
    if target == "compose":
        from orchestrator.render import render_deployment

        return render_deployment(plan, services, out_dir)
    directory = _prepare(out_dir, target)
    written: list[Path] = []
    plan_file = out_dir / "plan.json"
    plan_file.write_text(
        json.dumps(plan.model_dump(mode="json"), indent=2, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    written.append(plan_file)
    header = {"deployment": plan.name, "plan_hash": plan.plan_hash()}
    if target == "k8s":
        from orchestrator.targets.k8s import manifests

        env = environment()
        env.filters["yaml_document"] = yaml_document
        template = env.get_template("k8s/manifests.yaml.j2")
        for name, documents in manifests(plan, services, settings.kubernetes, slug):
            path = directory / name
            path.write_text(template.render(documents=documents, **header), encoding="utf-8")
            written.append(path)
        return written
    from orchestrator.targets.slurm import batch_script

    path = directory / SLURM_SCRIPT
    path.write_text(
        batch_script(plan, services, settings.slurm, slug, simulate=simulate), encoding="utf-8"
    )
    path.chmod(0o755)
    written.append(path)
    return written
