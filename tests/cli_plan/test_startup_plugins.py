"""`deploy`'s entry point answers pydantic's plugin lookup itself (no plugins) unless the user set
`PYDANTIC_DISABLE_PLUGINS`, so a plan never imports `importlib.metadata` or PyYAML; a pydantic
plugin installed as a real entry point is still found by pydantic when the user asks for it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

PLAN = ["plan", "qwen3-32b", "--gpus", "2xH100"]

# A pydantic plugin as observability tools ship one: a module and an entry point in the
# `pydantic` group of an installed distribution's metadata. It records each schema it sees.
PLUGIN = """\
import os


class Recorder:
    def new_schema_validator(self, schema, schema_type, path, kind, config, settings):
        with open(os.environ["PLUGIN_LOG"], "a", encoding="utf-8") as log:
            log.write(path.name + "\\n")
        return None, None, None


plugin = Recorder()
"""

RUN = """\
import sys

from orchestrator.cli import main

sys.argv = ["deploy", *sys.argv[1:]]
try:
    main()
finally:
    loaded = [name for name in ("importlib.metadata", "yaml") if name in sys.modules]
    print("LOADED", *loaded, file=sys.stderr)
"""


@dataclass
class Run:
    stdout: str
    loaded: list[str]
    plugin_saw: list[str]


def _install_plugin(site: Path) -> None:
    (site / "schema_recorder.py").write_text(PLUGIN, encoding="utf-8")
    info = site / "schema_recorder-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: schema-recorder\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[pydantic]\nrecorder = schema_recorder:plugin\n", encoding="utf-8"
    )


def _python(code: str, args: list[str], **variables: str) -> subprocess.CompletedProcess[str]:
    """`python -c code args` from the repository, `PYDANTIC_DISABLE_PLUGINS` unset unless given."""
    env = {key: value for key, value in os.environ.items() if key != "PYDANTIC_DISABLE_PLUGINS"}
    env.update(variables)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _deploy(tmp_path: Path, args: list[str], **variables: str) -> Run:
    site = tmp_path / "site"
    if not site.exists():
        site.mkdir()
        _install_plugin(site)
    log = tmp_path / "plugin.log"
    log.unlink(missing_ok=True)
    result = _python(
        RUN,
        args,
        **variables,
        PLUGIN_LOG=str(log),
        PYTHONPATH=f"{site}{os.pathsep}{REPO_ROOT}",
        XDG_CACHE_HOME=str(tmp_path / "cache"),  # this test's own catalog cache, cold at first
    )
    assert result.returncode == 0, result.stderr[-2000:]
    marker = [line for line in result.stderr.splitlines() if line.startswith("LOADED")]
    saw = log.read_text(encoding="utf-8").split() if log.exists() else []
    return Run(result.stdout, marker[-1].split()[1:], saw)


def test_a_plan_loads_neither_package_metadata_nor_yaml(tmp_path: Path) -> None:
    first = _deploy(tmp_path, PLAN)  # parses the catalog's YAML into the per-user cache
    assert first.loaded == ["yaml"]
    run = _deploy(tmp_path, PLAN)
    assert run.loaded == []
    assert run.stdout == first.stdout
    assert run.plugin_saw == []
    assert "plan: qwen3-32b" in run.stdout


def test_a_user_who_sets_the_variable_gets_pydantics_own_plugin_loading(tmp_path: Path) -> None:
    fast = _deploy(tmp_path, PLAN)
    everything = _deploy(tmp_path, PLAN, PYDANTIC_DISABLE_PLUGINS="")
    assert "PlanRequest" in everything.plugin_saw
    assert "importlib.metadata" in everything.loaded
    assert everything.stdout == fast.stdout
    # A value that names the plugin: pydantic reads it and leaves that plugin out.
    named = _deploy(tmp_path, PLAN, PYDANTIC_DISABLE_PLUGINS="recorder")
    assert (named.plugin_saw, named.stdout) == ([], fast.stdout)


def test_any_other_name_a_pydantic_release_asks_the_loader_for_loads_the_real_one() -> None:
    code = (
        "import sys\n"
        "from orchestrator.cli.startup import PLUGIN_LOADER, skip_pydantic_plugins\n"
        "assert skip_pydantic_plugins()\n"
        "assert not skip_pydantic_plugins()  # once is enough\n"
        "from pydantic.plugin._loader import get_plugins\n"
        "assert list(get_plugins()) == []\n"
        "from pydantic.plugin._loader import PYDANTIC_ENTRY_POINT_GROUP\n"
        "print(PYDANTIC_ENTRY_POINT_GROUP, type(sys.modules[PLUGIN_LOADER]).__name__)\n"
    )
    result = _python(code, [])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pydantic", "module"]
