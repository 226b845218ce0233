"""Every GPU profile cites the datasheet its figures come from, and quotes the bandwidth it uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from orchestrator.hardware.gpus import load_gpus_from
from orchestrator.resources import profiles_dir
from orchestrator.schema import GpuSpec

GPU_DIR = profiles_dir() / "gpus"
GPUS = load_gpus_from(GPU_DIR)

# 'Document title (site/path): figures ...': the site names where to check, the figures what was read.
CITATION = re.compile(r"^[^():]+ \((?P<site>[a-z0-9.-]+\.[a-z]+(/[^)\s]*)?)\)[^:]*: .*\d")


def _bandwidth_spellings(spec: GpuSpec) -> set[str]:
    """How a datasheet writes the per-GPU bandwidth, or the whole NVLink domain's for rack systems."""
    totals = [spec.memory_bandwidth_gbs]
    if spec.nvlink and spec.nvlink.domain_gpus:
        totals.append(spec.memory_bandwidth_gbs * spec.nvlink.domain_gpus)
    spellings: set[str] = set()
    for gbs in totals:
        spellings |= {f"{gbs:,.0f} GB/s", f"{gbs:.0f} GB/s", f"{gbs / 1000:g} TB/s"}
    return spellings


def test_every_profile_file_is_in_the_catalog() -> None:
    assert len(GPUS) == len(list(GPU_DIR.glob("*.yaml")))


@pytest.mark.parametrize("name", sorted(GPUS))
def test_every_gpu_cites_a_datasheet(name: str) -> None:
    spec = GPUS[name]
    assert spec.sources, f"{name} cites no source for its figures"
    for source in spec.sources:
        assert CITATION.match(source), f"{name}: {source!r} is not 'Title (site/path): figures'"


@pytest.mark.parametrize("name", sorted(GPUS))
def test_the_bandwidth_used_is_the_one_quoted(name: str) -> None:
    spec = GPUS[name]
    cited = " ".join((*spec.sources, *spec.notes))
    spellings = _bandwidth_spellings(spec)
    assert any(spelling in cited for spelling in spellings), (
        f"{name}: memory_bandwidth_gbs {spec.memory_bandwidth_gbs} is quoted nowhere "
        f"(looked for {sorted(spellings)})"
    )


def test_a_profile_without_sources_is_caught(tmp_path: Path) -> None:
    """The checks above are not vacuous: a profile stripped of its sources loads with none."""
    data = yaml.safe_load((GPU_DIR / "h100-sxm.yaml").read_text())
    del data["sources"]
    (tmp_path / "h100-sxm.yaml").write_text(yaml.safe_dump(data))
    (spec,) = load_gpus_from(tmp_path).values()
    assert spec.name == "H100-80GB-SXM" and spec.sources == () and spec.notes
