"""Loading and matching GPU profiles (the YAML reader is `orchestrator.profiles`).

The catalog is read once per process (`functools.cache`): `deploy plan` asks for a GPU many
times while it sweeps candidates, so every lookup after the first is a dict access. Models
are found by `orchestrator.models` (catalog, local directories, the Hugging Face Hub).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from orchestrator.errors import CatalogError
from orchestrator.input_limits import MAX_GPUS_PER_NODE
from orchestrator.profile_cache import cached_documents
from orchestrator.profiles import load_profile, parsed_documents, read_yaml
from orchestrator.resources import profiles_dir
from orchestrator.schema import GpuSpec

_GPU_LIST_HINT = "run `deploy profiles list --gpus` to see the GPUs"


def load_gpus_from(
    directory: Path, documents: list[tuple[Path, Any]] | None = None
) -> dict[str, GpuSpec]:
    """Every GPU profile in `directory`, by canonical name (not cached)."""
    gpus: dict[str, GpuSpec] = {}
    for path, data in parsed_documents(directory) if documents is None else documents:
        spec: GpuSpec = load_profile(path, data, GpuSpec)
        if spec.name in gpus:
            raise CatalogError(f"{path}: GPU name {spec.name!r} is defined twice")
        gpus[spec.name] = spec
    return gpus


@cache
def load_gpus() -> dict[str, GpuSpec]:
    """The shipped GPU catalog, by canonical name (parsed YAML cached across runs)."""
    directory = profiles_dir() / "gpus"
    return load_gpus_from(directory, cached_documents(directory, read_yaml))


# ---------------------------------------------------------------------------------------------
# GPU lookup
# ---------------------------------------------------------------------------------------------

_VENDOR_WORDS = ("nvidia", "geforce", "amd", "instinct", "tesla")


def _gpu_key(text: str) -> str:
    key = re.sub(r"[^a-z0-9]", "", text.lower())
    for word in _VENDOR_WORDS:
        key = key.removeprefix(word)
    return key


def _gpu_tokens(text: str) -> frozenset[str]:
    tokens = re.findall(r"[a-z]+|\d+", text.lower())
    return frozenset(token for token in tokens if token not in _VENDOR_WORDS)


def _gpu_words(text: str) -> list[str]:
    """The words a user typed, each as `_gpu_key` folds it ("H100 80GB" -> h100, 80gb)."""
    return [key for word in re.split(r"[\s_/-]+", text) if (key := _gpu_key(word))]


def _matches_words(text: str, spelling: str) -> bool:
    """Every typed word is a contiguous piece of the spelling: "GB300" never matches
    "MI300X-192GB" although its letters and digits all occur there."""
    wanted = _gpu_tokens(text)
    if not wanted or not wanted <= _gpu_tokens(spelling):
        return False
    key = _gpu_key(spelling)
    return all(word in key for word in _gpu_words(text))


def build_gpu_index(gpus: Mapping[str, GpuSpec]) -> dict[str, str]:
    """Every accepted spelling (name, alias, NVML name) -> canonical GPU name."""
    index: dict[str, str] = {}
    for spec in gpus.values():
        for spelling in (spec.name, *spec.aliases, *spec.nvml_names):
            key = _gpu_key(spelling)
            owner = index.get(key)
            if owner is not None and owner != spec.name:
                raise CatalogError(
                    f"GPU alias {spelling!r} is claimed by both {owner!r} and {spec.name!r}",
                    "make aliases unique in profiles/gpus/",
                )
            index[key] = spec.name
    return index


@cache
def _gpu_index() -> dict[str, str]:
    return build_gpu_index(load_gpus())


# GPUs detected on this machine that the catalog lacks, planned from what NVML reports
# (`hardware.unknown_gpu`): the renderers of the same process find them by their exact name.
_DETECTED: dict[str, GpuSpec] = {}


def register_detected(spec: GpuSpec) -> None:
    _DETECTED[spec.name] = spec


def find_gpu(text: str) -> GpuSpec:
    """A GPU by name, alias or NVML name, forgiving about case, spaces, dashes and word order.

    A bare family name picks the common board: H100 and H800 -> SXM 80 GB, A100 -> SXM 80 GB,
    H200 -> SXM 141 GB (see each profile's aliases).
    """
    if text in _DETECTED:
        return _DETECTED[text]
    gpus = load_gpus()
    key = _gpu_key(text)
    name = _gpu_index().get(key)
    if name is not None:
        return gpus[name]
    # Word-order-free match: every word the user typed appears whole in one GPU's names.
    wanted = _gpu_tokens(text)
    if wanted:
        matches = [
            spec
            for spec in gpus.values()
            if any(
                _matches_words(text, spelling)
                for spelling in (spec.name, *spec.aliases, *spec.nvml_names)
            )
        ]
        if len(matches) > 1:
            # "H100 80GB" names both SXM and PCIe boards: the SXM board is the common default.
            sxm = [spec for spec in matches if spec.form_factor == "sxm"]
            matches = sxm if len(sxm) == 1 else matches
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            options = ", ".join(spec.name for spec in matches)
            raise CatalogError(f"GPU {text!r} is ambiguous", f"use one of: {options}")
    import difflib

    # Never another GPU in its place: only suggestions, and the user chooses.
    close = difflib.get_close_matches(key, list(_gpu_index()), n=5, cutoff=0.5)
    names = list(dict.fromkeys(_gpu_index()[match] for match in close))[:3]
    hint = f"did you mean {', '.join(names)}? " if names else ""
    raise CatalogError(f"unknown GPU {text!r}", f"{hint}{_GPU_LIST_HINT}")


_SPEC_RE = re.compile(r"^\s*(\d+)\s*[x×*]\s*(\S.*)$", re.IGNORECASE)


def tray_problem(gpu: GpuSpec, count: int) -> str | None:
    """Why `count` GPUs cannot be one node of this GPU (an NVL72 tray holds 4), or None."""
    per_tray = gpu.nvlink.gpus_per_node if gpu.nvlink is not None else None
    if per_tray is None or count <= per_tray:
        return None
    trays = -(-count // per_tray)
    return (
        f"a {gpu.name} node (compute tray) holds {per_tray} GPUs, not {count}; "
        f"write {per_tray}x{gpu.aliases[0] if gpu.aliases else gpu.name} with {trays} nodes "
        "(--nodes, or one cluster-file node per tray): the trays share one NVLink domain"
    )


def parse_gpu_spec(text: str) -> tuple[int | None, GpuSpec]:
    """`8xH200`, `8x H100-80GB`, `4*RTX4090` or a bare name (count None)."""
    if not text or not text.strip():
        raise CatalogError("empty GPU spec", "write it as COUNTxGPU, e.g. 8xH100")
    match = _SPEC_RE.match(text)
    if match is None:
        return None, find_gpu(text)
    digits = match.group(1)
    if len(digits) > 6:  # int() of a huge digit string is itself slow
        digits = "9" * 7
    count = int(digits)
    if count > MAX_GPUS_PER_NODE:
        # A whole NVL72 rack typed as one node: the tray layout is the useful answer.
        spec = find_gpu(match.group(2))
        problem = tray_problem(spec, count)
        if problem is not None:
            raise CatalogError(problem, "")
        raise CatalogError(
            f"GPU spec {text!r} asks for {match.group(1)} GPUs per node, over the limit of "
            f"{MAX_GPUS_PER_NODE}",
            f"use at most {MAX_GPUS_PER_NODE} per node and --nodes N, e.g. 8xH100",
        )
    if count < 1:
        raise CatalogError(
            f"GPU spec {text!r} asks for {count} GPUs", "the count must be at least 1, e.g. 8xH100"
        )
    return count, find_gpu(match.group(2))


def gpu_from_nvml_name(name: str, memory_bytes: int | None = None) -> GpuSpec | None:
    """The catalog entry for a name NVML reports, or None when the GPU is not in the catalog.

    When several entries share the name, the one whose memory is closest to `memory_bytes` wins.
    """
    folded = name.strip().casefold()
    gpus = load_gpus().values()
    matches = [spec for spec in gpus if folded in (n.casefold() for n in spec.nvml_names)]
    if not matches:
        # Exact spellings only (no word-subset guess): "NVIDIA L40" must not become an L40S.
        canonical = _gpu_index().get(_gpu_key(name))
        if canonical is None:
            return None
        matches = [load_gpus()[canonical]]
    if memory_bytes is not None:
        memory_gib = memory_bytes / 2**30
        # One NVML name for two boards (H20 96 GB and 141 GB): the memory tells them apart.
        family = re.match(r"[A-Za-z]+\d+", matches[0].name)
        if family is not None and abs(matches[0].memory_gib - memory_gib) > 0.1 * memory_gib:
            matches += [
                spec
                for spec in gpus
                if spec not in matches
                and re.match(rf"{family.group(0)}\b|{family.group(0)}-", spec.name)
            ]
        matches.sort(key=lambda spec: abs(spec.memory_gib - memory_gib))
    return matches[0]
