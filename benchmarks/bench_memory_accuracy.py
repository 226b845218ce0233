"""Memory planner vs. real vLLM startup logs: per-observation errors and their medians."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory_accuracy import main

if __name__ == "__main__":
    raise SystemExit(main())
