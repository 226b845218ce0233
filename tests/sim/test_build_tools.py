"""A machine without the simulator image's build tools skips the tests that need the image,
with the build script's own reason; CI (CI=true) requires them."""

from __future__ import annotations

from tests.conftest import REPO_ROOT

from .conftest import _missing_build_tool

SCRIPT = REPO_ROOT / "docker" / "build-sim-image.sh"


def test_the_skip_matches_the_build_scripts_own_words() -> None:
    text = SCRIPT.read_text(encoding="utf-8")
    for words in ("debootstrap is not installed", "debootstrap needs root"):
        assert words in text  # the script still says it that way
        line = f"build-sim-image: error: {words}; install it"
        assert _missing_build_tool(f"something\n{line}\n") == line


def test_other_build_failures_still_fail() -> None:
    assert _missing_build_tool("docker: permission denied\nimport failed") is None
