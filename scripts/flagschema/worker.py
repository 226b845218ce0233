"""Build one engine's parser from its unpacked source and write its schema (one process each).

Usage: python worker.py ENGINE VERSION SOURCE_DIR OUT_FILE GENERATED_BY

A fresh process per engine version keeps `sys.modules` and the stubs of one build out of the
next. `SOURCE_DIR` holds the engine's packages and its `*.dist-info/METADATA`.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

_PIN = re.compile(
    r"^Requires-Dist:\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*\(?\s*(?:==|>=|~=)\s*([0-9][^,;\s)]*)"
)


def pinned_versions(source: Path) -> dict[str, str]:
    """Dependency versions the engine's metadata pins (`torch==2.14.0`, `x>=1.2` -> 1.2)."""
    pins: dict[str, str] = {}
    for metadata in source.glob("*.dist-info/METADATA"):
        for line in metadata.read_text(encoding="utf-8", errors="replace").splitlines():
            match = _PIN.match(line)
            if match and "extra ==" not in line:
                pins.setdefault(match.group(1), match.group(2))
    return pins


def main(argv: list[str]) -> int:
    engine, version, source_text, out_text, generated_by = argv
    source = Path(source_text).resolve()
    sys.path.insert(0, str(source))
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
    # Engines log at import time and may read these; keep the build quiet and CPU-only.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("SGLANG_LOGGING_LEVEL", "ERROR")
    logging.disable(logging.WARNING)

    from flagschema import stubs
    from flagschema.builders import RECIPES
    from flagschema.dump import dump_parser, to_json

    recipe = RECIPES[engine]
    if recipe.argv:
        sys.argv = list(recipe.argv)
    finder = stubs.install(pinned_versions(source), recipe.stub_names, recipe.overrides)
    built = stubs.import_with_stubs(finder, lambda: recipe.build(source), recipe.packages)
    schema = dump_parser(
        built.parser,
        engine=engine,
        version=version,
        entry_point=built.entry_point,
        generated_by=generated_by,
        features=built.features,
    )
    schema["stubbed_modules"] = sorted(finder.names)
    Path(out_text).write_text(to_json(schema), encoding="utf-8")
    print(
        f"{engine} {version}: {schema['option_count']} options, stubbed {len(finder.names)} modules"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
