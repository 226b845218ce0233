"""Node inventories found by remote detection, cached for cluster files that say
`gpus: detect`.

One JSON file per node under `$XDG_CACHE_HOME/deploy/inventories/` (else
`~/.cache/deploy/inventories/`), keyed by the node's name and Docker endpoint, written
atomically. `deploy detect --cluster FILE` refreshes them; deleting them is always safe (the
next plan detects again).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.hardware.inventory import NodeInventory


def inventory_path(name: str, docker: str) -> Path:
    from orchestrator.profile_cache import cache_dir

    key = hashlib.sha256(f"{name}\n{docker}".encode()).hexdigest()[:16]
    return cache_dir() / "inventories" / f"{name}-{key}.json"


def store(name: str, docker: str, inventory: NodeInventory) -> Path:
    from orchestrator.files import write_atomically

    return write_atomically(
        inventory_path(name, docker), inventory.model_dump_json(indent=2) + "\n"
    )


def load(name: str, docker: str) -> NodeInventory | None:
    from pydantic import ValidationError

    from orchestrator.hardware.inventory import NodeInventory

    path = inventory_path(name, docker)
    try:
        return NodeInventory.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        return None  # absent or from another version: detect again


def detected_inventory(name: str, docker: str) -> NodeInventory:
    """The cached inventory of a `gpus: detect` node, detecting it through Docker when there
    is none yet."""
    cached = load(name, docker)
    if cached is not None:
        return cached
    from orchestrator.docker.endpoints import Endpoints
    from orchestrator.doctor.remote_detect import inventory_from_recording, record_remote
    from orchestrator.engines.versions import default_version, image_for

    image = image_for("vllm", default_version("vllm"))
    with Endpoints() as endpoints:
        found = inventory_from_recording(record_remote(endpoints.client(docker), image, name))
    store(name, docker, found)
    return found
