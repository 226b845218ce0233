"""Who owns a container, network or volume: the user id and the state directory that made it.

Every object `up` creates carries both as labels. `down`, `status` and `up`'s replace logic act
only on objects of the caller's state directory (unless `--all-owners`), so two users, or two
state directories of one user, never remove or take over each other's deployments; a name in
use by another owner is a conflict with a clear message, not a takeover. A Docker daemon is
shared by everyone who may use it, so these labels are bookkeeping between cooperating users,
not a security boundary: whoever can reach the socket can do anything.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.errors import InputError
from orchestrator.spec import LABEL_DEPLOYMENT, LABEL_PREFIX
from orchestrator.state import StateStore

LABEL_OWNER = f"{LABEL_PREFIX}.owner"
LABEL_STATE_DIR = f"{LABEL_PREFIX}.state-dir"

T = TypeVar("T")


class OwnershipConflict(InputError):
    """A deployment of that name exists and belongs to another state directory."""


def current_uid() -> str:
    return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def state_dir_key(store: StateStore) -> str:
    """The state directory as one absolute, symlink-free path: the same directory reached two
    ways (relative, through a link) is the same owner."""
    return os.path.realpath(Path(store.directory).expanduser())


def owner_labels(store: StateStore) -> dict[str, str]:
    return {LABEL_OWNER: current_uid(), LABEL_STATE_DIR: state_dir_key(store)}


def belongs(labels: Mapping[str, str] | None, store: StateStore) -> bool:
    return (labels or {}).get(LABEL_STATE_DIR) == state_dir_key(store)


def describe_owner(labels: Mapping[str, str] | None) -> str:
    values = labels or {}
    uid, directory = values.get(LABEL_OWNER), values.get(LABEL_STATE_DIR)
    if uid is None and directory is None:
        return "no recorded owner (made by hand or by an older deploy)"
    who = "you" if uid == current_uid() else f"user id {uid or '?'}"
    return f"{who}, state directory {directory or '?'}"


def labels_of(item: Any) -> dict[str, str]:
    """Labels of a docker SDK container, network or volume."""
    labels = getattr(item, "labels", None)
    if labels is None:
        labels = (getattr(item, "attrs", None) or {}).get("Labels")
    return dict(labels or {})


def split_owned(
    items: Iterable[T],
    store: StateStore,
    labels: Any = labels_of,
    recorded: Collection[str] = (),
) -> tuple[list[T], list[T]]:
    """(the caller's, everyone else's), by the state-directory label of each item. An item
    with no owner labels (made by a deploy that did not write them) is the caller's when its
    deployment is `recorded` in the caller's state directory."""
    mine: list[T] = []
    foreign: list[T] = []
    for item in items:
        values = labels(item)
        adopted = LABEL_STATE_DIR not in values and values.get(LABEL_DEPLOYMENT) in recorded
        (mine if adopted or belongs(values, store) else foreign).append(item)
    return mine, foreign


def conflict(name: str, labels: Mapping[str, str] | None, store: StateStore) -> OwnershipConflict:
    return OwnershipConflict(
        f"deployment {name} already exists and belongs to {describe_owner(labels)}, "
        f"not to {state_dir_key(store)}",
        "choose another --name, use that state directory (--state-dir), or pass --all-owners "
        "to take it over",
    )


def claim(
    name: str,
    found: list[tuple[str, Any]],
    store: StateStore,
    all_owners: bool,
) -> list[tuple[str, Any]]:
    """What `up` may keep or replace among `found` (endpoint, object) pairs of deployment
    `name`: all of them when they are the caller's (or with --all-owners); else a conflict."""
    if all_owners:
        return found
    recorded = [name] if store.path(name).is_file() else []
    _, foreign = split_owned(found, store, lambda pair: labels_of(pair[1]), recorded)
    if foreign:
        raise conflict(name, labels_of(foreign[0][1]), store)
    return found
