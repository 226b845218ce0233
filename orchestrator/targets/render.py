"""`deploy render --target`: `render_target` writes `DIR/plan.json` and `DIR/k8s/*.yaml` or `DIR/slurm/job.sbatch`."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from orchestrator.errors import InputError
from orchestrator.plan import Plan
from orchestrator.spec import ServiceSpec
from orchestrator.targets.settings import TargetSettings

Target = Literal["compose", "k8s", "slurm"]
TARGETS: tuple[Target, ...] = ("compose", "k8s", "slurm")
SLURM_SCRIPT = "job.sbatch"


# Each target directory lists the files its render wrote: the next render replaces exactly
# those, and keeps everything else (the user's own files, another target's render).
MANIFEST = ".deploy-files"


def _earlier_files(out_dir: Path, subdir: str) -> set[PurePosixPath]:
    """Files of `out_dir` an earlier render of this target wrote (relative paths). A directory
    with other content must hold a deploy plan.json; the target's directory must be a real
    directory (a link would send the replacement elsewhere)."""
    from orchestrator.targets.compose.render import _check_out_dir

    if not _check_out_dir(out_dir):
        return set()
    owned = {PurePosixPath("plan.json")}
    target = out_dir / subdir
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise InputError(
            f"{target} is not a directory deploy wrote (a link or a file)",
            "move it away, or pass another --out",
        )
    if not target.is_dir():
        return owned
    try:
        listed = (target / MANIFEST).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        # A render from before the manifest: its files carry deploy's header.
        listed = [
            path.name
            for path in sorted(target.iterdir())
            if path.is_file()
            and not path.is_symlink()
            and path.suffix in (".yaml", ".sbatch")
            and _rendered_by_deploy(path)
        ]
    for name in listed:
        if name and "/" not in name and name not in (".", ".."):
            owned.add(PurePosixPath(subdir, name))
    owned.add(PurePosixPath(subdir, MANIFEST))
    return owned


def _rendered_by_deploy(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            head = handle.read(512)
    except OSError:
        return False
    return "# Rendered by deploy: deployment " in head


def _write_files(
    stage: Path, subdir: str, plan: Plan, files: list[tuple[str, str, bool]]
) -> list[PurePosixPath]:
    """plan.json and the target's files (name, text, executable) under `stage`."""

    def write(path: Path, text: str, executable: bool = False) -> None:
        try:
            path.write_text(text, encoding="utf-8")
            if executable:
                path.chmod(0o755)
        except OSError as error:  # a failed write() names no file: name it for the error line
            raise OSError(error.errno, error.strerror, str(path)) from error

    write(
        stage / "plan.json",
        json.dumps(plan.model_dump(mode="json"), indent=2, sort_keys=True) + "\n",
    )
    written = [PurePosixPath("plan.json")]
    directory = stage / subdir
    directory.mkdir()
    for name, text, executable in files:
        write(directory / name, text, executable)
        written.append(PurePosixPath(subdir, name))
    write(directory / MANIFEST, "".join(f"{name}\n" for name, _, _ in files))
    return written


def requires(documents: list[dict[str, Any]]) -> list[str]:
    """What the manifests reference and do not create: the Secret (and its keys), the cache
    claim, the LeaderWorkerSet controller; one line each for the file's header."""
    secrets: dict[str, set[str]] = {}
    claims: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("secretKeyRef")
            if isinstance(ref, dict):
                secrets.setdefault(ref["name"], set()).add(ref["key"])
            claim = node.get("persistentVolumeClaim")
            if isinstance(claim, dict):
                claims.add(claim["claimName"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(documents)
    lines = [
        f"Secret {name} with keys {', '.join(sorted(keys))} (kubectl create secret generic "
        f"{name} " + " ".join(f"--from-literal={key}=..." for key in sorted(keys)) + ")"
        for name, keys in sorted(secrets.items())
    ]
    lines += [
        f"PersistentVolumeClaim {name}, ReadWriteMany (every pod mounts it, on several nodes)"
        for name in sorted(claims)
    ]
    if any(document.get("kind") == "LeaderWorkerSet" for document in documents):
        lines.append("the LeaderWorkerSet controller (leaderworkerset.x-k8s.io/v1)")
    return lines


def target_files(
    target: Target,
    plan: Plan,
    services: list[ServiceSpec],
    settings: TargetSettings,
    *,
    simulate: bool = False,
) -> list[tuple[str, str, bool]]:
    """(file name, text, executable) of the k8s or Slurm target's directory, in order."""
    from orchestrator.targets.compose.render import compose_project, environment
    from orchestrator.targets.yaml_text import yaml_document

    slug = compose_project(plan)
    header = {"deployment": plan.name, "plan_hash": plan.plan_hash()}
    if target == "k8s":
        from orchestrator.targets.k8s import manifests

        env = environment()
        env.filters["yaml_document"] = yaml_document
        template = env.get_template("k8s/manifests.yaml.j2")
        return [
            (
                name,
                template.render(documents=documents, requires=requires(documents), **header),
                False,
            )
            for name, documents in manifests(plan, services, settings.kubernetes, slug)
        ]
    from orchestrator.targets.slurm import batch_script

    script = batch_script(plan, services, settings.slurm, slug, simulate=simulate)
    return [(SLURM_SCRIPT, script, True)]


def render_target(
    target: Target,
    plan: Plan,
    services: list[ServiceSpec],
    out_dir: Path,
    settings: TargetSettings,
    *,
    simulate: bool = False,
) -> list[Path]:
    """Write the files of `target` under `out_dir`; return their paths, in order.

    Everything is built first, then written to a sibling of `out_dir` that replaces it in one
    rename (`atomic_files`): a failure leaves the earlier render as it was. Only the files an
    earlier render of this target wrote (its manifest) and plan.json are replaced; every other
    file is carried over."""
    from orchestrator.files import os_error, replace_directory, resolve_target

    if target == "compose":
        from orchestrator.targets.compose.render import render_deployment

        return render_deployment(plan, services, out_dir)
    files = target_files(target, plan, services, settings, simulate=simulate)
    final = resolve_target(out_dir)
    try:
        owned = _earlier_files(final, target)
    except OSError as error:
        raise os_error(error) from None
    written = replace_directory(
        final,
        lambda stage: _write_files(stage, target, plan, files),
        lambda relative: relative not in owned,
    )
    return [out_dir / path for path in written]
