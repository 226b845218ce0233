"""Engine releases as data: one profile per release, each fact with its source, and the list
of versions deploy knows derived from those files."""

from __future__ import annotations

import pytest

from orchestrator.engines.flags import load_schema
from orchestrator.engines.versions import (
    default_version,
    feature,
    image_for,
    releases,
    releases_dir,
    resolve_version,
    versions,
)
from orchestrator.errors import CatalogError, InputError


def test_the_version_list_is_the_release_files() -> None:
    files = sorted(path.stem for path in releases_dir().glob("*.yaml"))
    listed = sorted(f"{engine}-{v}" for engine, by in releases().items() for v in by)
    assert files == listed
    assert versions("vllm") == ("0.33.0", "0.32.0")
    assert versions("sglang") == ("0.5.23", "0.5.22", "0.5.21", "0.5.19")
    assert default_version("vllm") == "0.33.0"
    assert resolve_version("sglang", "v0.5.22") == "0.5.22"
    with pytest.raises(InputError, match=r"use --engine-version with one of: 0\.33\.0, 0\.32\.0"):
        resolve_version("vllm", "0.1.0")


def test_every_fact_names_its_source() -> None:
    for by_version in releases().values():
        for release in by_version.values():
            facts = [release.image, release.port, *release.features.values()]
            assert all(fact.source.strip() for fact in facts), release
            # v<version>, or a build of it (`-cu129`): the tag names the release
            assert release.image.value.rsplit(":", 1)[1].startswith(f"v{release.version}")
            assert image_for(release.engine, release.version) == release.image.value


def test_feature_gates_agree_with_the_flag_schemas() -> None:
    for version in versions("sglang"):
        has_flag = load_schema("sglang", version).lookup("--attn-dp-size") is not None
        assert feature("sglang", version, "attn_dp_size_flag") is has_flag


def test_a_gate_a_release_does_not_state_is_refused() -> None:
    with pytest.raises(CatalogError, match="does not say whether it has warp-drive"):
        feature("vllm", "0.33.0", "warp-drive")
