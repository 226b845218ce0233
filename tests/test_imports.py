"""Every import inside the package points down the map of docs/architecture.md:

    cli -> execution -> {planning, engines, targets, runtime, doctor, bench, sim}
        -> {models, hardware, docker} -> {plan, spec, state, schema, ...} -> {errors, files, ...}

A module may import any room on a lower layer, its own room, and a room on its own layer only
where `SIDEWAYS` says why; engines and targets read no catalog (`NO_CATALOG`). The tables are
data: `ROOMS` names the room of each module by its dotted path (the longest prefix wins), so a
module that moves keeps its room when its path is rewritten. Imports under `TYPE_CHECKING`
count: a type is a dependency too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "orchestrator"

LAYER = {
    "base": 0,
    "contracts": 1,
    "models": 2,
    "hardware": 2,
    "docker": 2,
    "planning": 3,
    "engines": 3,
    "targets": 3,
    "runtime": 3,
    "doctor": 3,
    "bench": 3,
    "sim": 3,
    "execution": 4,
    "cli": 5,
}

# The room of each module, by dotted path; the longest matching prefix wins.
ROOMS = {
    "orchestrator": "base",
    "orchestrator.__main__": "cli",
    # shared base: imported by all, importing only each other
    "orchestrator.base": "base",
    "orchestrator.errors": "base",
    "orchestrator.files": "base",
    "orchestrator.resources": "base",
    "orchestrator.profiles": "base",
    "orchestrator.profile_cache": "base",
    "orchestrator.input_limits": "base",
    "orchestrator.naming": "base",
    "orchestrator.versioning": "base",
    # the contracts between rooms
    "orchestrator.plan": "contracts",
    "orchestrator.spec": "contracts",
    "orchestrator.schema": "contracts",
    "orchestrator.group_health": "contracts",
    "orchestrator.secrets_policy": "contracts",
    "orchestrator.state": "contracts",
    # what a model is; what the machines are; how Docker is reached
    "orchestrator.models": "models",
    "orchestrator.hardware": "hardware",
    "orchestrator.hardware.gpus": "hardware",
    "orchestrator.docker": "docker",
    "orchestrator.docker.endpoints": "docker",
    "orchestrator.docker.ops": "docker",
    "orchestrator.docker.env": "docker",
    # the work rooms
    "orchestrator.planning": "planning",
    "orchestrator.planning.memory.estimate": "planning",
    "orchestrator.planning.build": "planning",
    "orchestrator.planning.request": "planning",
    "orchestrator.engines": "engines",
    "orchestrator.engines.flags": "engines",
    "orchestrator.engines.flag_values": "engines",
    "orchestrator.engines.versions": "engines",
    "orchestrator.targets": "targets",
    "orchestrator.targets.compose.render": "targets",
    "orchestrator.targets.compose.readme": "targets",
    "orchestrator.runtime": "runtime",
    "orchestrator.doctor": "doctor",
    "orchestrator.bench": "bench",
    "orchestrator.sim": "sim",
    # the sequence, and the words
    "orchestrator.execution": "execution",
    "orchestrator.cli": "cli",
    "orchestrator.cli.dryrun": "cli",
    "orchestrator.cli.slurm": "cli",
}

# Imports between rooms of one layer, each with its reason: (room, imported module prefix).
SIDEWAYS = {
    ("targets", "orchestrator.engines"): "targets write the engines' ServiceSpecs and placement",
    ("doctor", "orchestrator.engines"): "doctor checks the services the engines built for a plan",
    ("doctor", "orchestrator.engines.versions"): "remote detection runs in the default vLLM image",
    ("doctor", "orchestrator.runtime.containers"): "check containers are created as runtime's",
    ("bench", "orchestrator.planning.performance"): "bench prints the prediction beside each level",
    ("planning", "orchestrator.engines.versions"): "memory overheads differ per engine release",
    ("hardware", "orchestrator.docker"): "remote detection reaches nodes through Docker",
    ("hardware", "orchestrator.docker.endpoints"): "remote detection reaches nodes through Docker",
}

# Rooms that read only the Plan, the ServiceSpecs and the engine profiles.
NO_CATALOG = {"engines": ("models", "hardware"), "targets": ("models", "hardware")}

# Arrows that still point the wrong way, each pinned here so that none is added silently and a
# fixed one is taken off the list: (importing module, imported module) -> why it is still there.
KNOWN_DEBTS: dict[tuple[str, str], str] = {
    (
        "orchestrator.hardware.cluster_file",
        "orchestrator.doctor.inventory_cache",
    ): "`gpus: detect` in a cluster file runs remote detection while the file is read",
    (
        "orchestrator.state",
        "orchestrator.docker.endpoints",
    ): "a saved state records the Docker endpoint each node resolved to, so `down` reaches the "
    "daemons `up` used; the resolution belongs in runtime's save path",
}

# Root modules allowed besides the shared base and the contracts: the entry points.
ROOT_ENTRY = {"orchestrator", "orchestrator.__main__", "orchestrator.execution"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def room_of(module: str) -> str:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        room = ROOMS.get(".".join(parts[:end]))
        if room is not None:
            return room
    raise AssertionError(f"{module} has no room: add it to ROOMS in tests/test_imports.py")


def _existing(dotted: str) -> str:
    parts = dotted.split(".")
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts)


def imports_of(module: str) -> set[str]:
    """The package modules `module` imports (relative imports resolved)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            if target == "orchestrator" or target.startswith("orchestrator."):
                resolved = _existing(target)
                if resolved and resolved != module:
                    found.add(resolved)
    return found


def _sideways_allowed(room: str, target: str) -> bool:
    return any(
        room == source and (target == prefix or target.startswith(prefix + "."))
        for source, prefix in SIDEWAYS
    )


def violations() -> dict[tuple[str, str], str]:
    wrong: dict[tuple[str, str], str] = {}
    for module in MODULES:
        room = room_of(module)
        for target in imports_of(module):
            other = room_of(target)
            if other == room:
                continue
            if other in NO_CATALOG.get(room, ()):
                wrong[(module, target)] = f"{room} reads no catalog ({other})"
            elif LAYER[other] > LAYER[room]:
                wrong[(module, target)] = f"{room} imports upward ({other})"
            elif LAYER[other] == LAYER[room] and not _sideways_allowed(room, target):
                wrong[(module, target)] = f"{room} imports its sibling {other}"
    return wrong


def test_every_module_has_a_room() -> None:
    for module in MODULES:
        assert room_of(module) in LAYER


def test_every_arrow_points_down() -> None:
    wrong = violations()
    new = {edge: why for edge, why in wrong.items() if edge not in KNOWN_DEBTS}
    assert not new, "imports against the map (docs/architecture.md):\n" + "\n".join(
        f"  {a} -> {b}: {why}" for (a, b), why in sorted(new.items())
    )


def test_known_debts_are_still_debts() -> None:
    """A debt that was paid comes off the list, so the list never hides a new one."""
    wrong = violations()
    paid = sorted(edge for edge in KNOWN_DEBTS if edge not in wrong)
    assert not paid, f"no longer imported against the map, remove from KNOWN_DEBTS: {paid}"


def test_runtime_never_plans_renders_or_runs_doctor() -> None:
    for module in MODULES:
        if room_of(module) != "runtime":
            continue
        for target in imports_of(module):
            assert room_of(target) not in ("planning", "engines", "targets", "doctor"), (
                f"{module} imports {target}: runtime receives what it needs from execution"
            )


def test_the_cli_holds_no_sequence_of_its_own() -> None:
    """`plan`, `render`, `up` and `doctor` go through execution; none calls the planner or a renderer
    (the request they parse is the only planning module they name)."""
    commands = ("plan", "render", "runtime", "doctor")
    for name in (f"orchestrator.cli.{command}" for command in commands):
        targets = imports_of(name)
        assert "orchestrator.execution" in targets, name
        assert not {t for t in targets if room_of(t) in ("engines", "planning")} - {
            "orchestrator.planning.request",
            "orchestrator.planning.resolver.explain",  # words of the plan report
        }, name


@pytest.mark.parametrize("room", ["engines", "targets"])
def test_engines_and_targets_read_no_catalog(room: str) -> None:
    for module in MODULES:
        if room_of(module) != room:
            continue
        for target in imports_of(module):
            assert room_of(target) not in ("models", "hardware"), f"{module} imports {target}"


# Root modules that belong in a room and move there (the moves rewrite these paths).
# <moves-pending>
MOVES_PENDING: set[str] = set()
# </moves-pending>


def test_the_package_root_holds_only_shared_modules() -> None:
    root = {name for name, path in MODULES.items() if path.parent == PACKAGE}
    shared = {name for name, room in ROOMS.items() if room in ("base", "contracts")}
    outside = sorted(root - shared - ROOT_ENTRY - MOVES_PENDING)
    assert not outside, f"root modules outside the shared base and contracts: {outside}"


# Pairs of modules that import each other, each pinned (none may be added silently).
KNOWN_CYCLES = {
    ("orchestrator.hardware", "orchestrator.hardware.detect"),  # the package's own entry points
    ("orchestrator.sim.settings", "orchestrator.sim.start_failures"),
    # The package's record type, and its store and learner that import it (lazily back).
    ("orchestrator.planning.calibration", "orchestrator.planning.calibration.store"),
    ("orchestrator.planning.calibration.learn", "orchestrator.planning.calibration.store"),
    # The CPU planner reuses the GPU planner's workload (lazily); the planner branches to it.
    ("orchestrator.planning.build", "orchestrator.planning.cpu.plan"),
    # The give-up record names its supervisor only for typing.
    ("orchestrator.runtime.give_up", "orchestrator.runtime.supervisor"),
}


def test_no_two_modules_import_each_other() -> None:
    graph = {module: imports_of(module) for module in MODULES}
    pairs = {
        (a, b) for a, targets in graph.items() for b in targets if a < b and a in graph.get(b, ())
    }
    assert pairs == KNOWN_CYCLES
