#!/usr/bin/env python3
"""Generate `profiles/engines/<engine>-<version>.json` from an engine's real argument parser.

    python scripts/gen_flag_schemas.py vllm 0.33.0
    python scripts/gen_flag_schemas.py sglang 0.5.23 --out profiles/engines
    python scripts/gen_flag_schemas.py smg 1.13.0 --source DIR   # an unpacked tree, no download

Steps: `pip download --no-deps ENGINE==VERSION` into a cache directory outside the repository,
unpack the wheel's Python files and metadata (never its compiled parts), make a throwaway
virtual environment with the few light packages the parser imports, and build the parser in
a fresh worker process (`flagschema/worker.py`) with every other missing import stood in for.
Engines: vllm, sglang, vllm-router, sglang-router, smg.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = SCRIPTS_DIR.parent
WORKER = SCRIPTS_DIR / "flagschema" / "worker.py"

# PyPI distribution name of each engine.
DISTRIBUTIONS = {
    "vllm": "vllm",
    "sglang": "sglang",
    "vllm-router": "vllm-router",
    "sglang-router": "sglang-router",
    "smg": "smg",
}
# What importing the parsers needs for real (everything else is stood in for).
LIGHT_PACKAGES = (
    "pydantic",
    "msgspec",
    "regex",
    "pyyaml",
    "packaging",
    "setproctitle",
    "typing_extensions",
    "cachetools",
)
_UNPACKED_SUFFIXES = (".py", ".json", ".yaml", ".txt", "METADATA")


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deploy-flag-schemas"


def fetch_wheel(engine: str, version: str, cache: Path) -> Path:
    """Download the wheel once; later runs reuse it."""
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    prefix = DISTRIBUTIONS[engine].replace("-", "_") + f"-{version}-"
    found = sorted(wheels.glob(prefix + "*.whl"))
    if not found:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-q",
                "-d",
                str(wheels),
                f"{DISTRIBUTIONS[engine]}=={version}",
            ],
            check=True,
        )
        found = sorted(wheels.glob(prefix + "*.whl"))
    if not found:
        raise SystemExit(f"pip download gave no wheel for {engine}=={version} in {wheels}")
    return found[0]


def unpack(wheel: Path, cache: Path) -> Path:
    """Extract only Python sources and metadata: compiled extensions are never imported."""
    target = cache / "src" / wheel.stem
    marker = target / ".complete"
    if not marker.exists():
        with zipfile.ZipFile(wheel) as archive:
            names = [name for name in archive.namelist() if name.endswith(_UNPACKED_SUFFIXES)]
            archive.extractall(target, names)
        marker.write_text(wheel.name, encoding="utf-8")
    return target


def builder_python(cache: Path) -> Path:
    """A throwaway venv holding only the light packages."""
    env_dir = cache / "venv"
    python = env_dir / "bin" / "python"
    marker = env_dir / ".light-packages"
    if not marker.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *LIGHT_PACKAGES], check=True)
        marker.write_text("\n".join(LIGHT_PACKAGES), encoding="utf-8")
    return python


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def generate(
    engine: str,
    version: str,
    out_dir: Path,
    *,
    cache: Path,
    source: Path | None,
    python: Path | None,
) -> Path:
    if source is None:
        wheel = fetch_wheel(engine, version, cache)
        source = unpack(wheel, cache)
        origin = f"{wheel.name} (sha256 {sha256(wheel)[:16]})"
    else:
        origin = f"source tree {source.name}"
    generated_by = f"scripts/gen_flag_schemas.py {engine} {version} from {origin}"
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / f"{engine}-{version}.json"
    interpreter = python or builder_python(cache)
    subprocess.run(
        [str(interpreter), str(WORKER), engine, version, str(source), str(out_file), generated_by],
        check=True,
    )
    return out_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("engine", choices=sorted(DISTRIBUTIONS))
    parser.add_argument("version")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "profiles" / "engines")
    parser.add_argument(
        "--cache",
        type=Path,
        default=default_cache(),
        help="download/unpack/venv directory (default: %(default)s)",
    )
    parser.add_argument(
        "--source", type=Path, help="an unpacked engine tree to use instead of downloading"
    )
    parser.add_argument(
        "--python", type=Path, help="interpreter for the worker (default: the cache's light venv)"
    )
    args = parser.parse_args(argv)
    out_file = generate(
        args.engine,
        args.version,
        args.out,
        cache=args.cache,
        source=args.source,
        python=args.python,
    )
    print(f"wrote {out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
