"""Detection time of an 8-GPU NVSwitch node (the recorded DGX H100 topology).

The real detection code runs against the NVML stand-in and a sysfs tree written from the
same recording, so the figure covers every query, the topology derivation, the RDMA/NIC
scan and the catalog lookup; NVML's own latency on a real driver comes on top. Goal: the
median under 0.5 s.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.hardware.detect import detect_node  # noqa: E402
from orchestrator.hardware.replay.nvml import FakeNvml  # noqa: E402
from orchestrator.hardware.replay.sysfs import write_sysfs  # noqa: E402

RECORDING = ROOT / "tests" / "hardware" / "fixtures" / "h100-sxm-8-nvswitch.json"
RUNS = 200
GOAL_S = 0.5


def main() -> int:
    fake = FakeNvml.from_file(RECORDING)
    with tempfile.TemporaryDirectory(prefix="bench-detect-") as root:
        paths = write_sysfs(fake.topology["sysfs"], Path(root))
        started = time.perf_counter()
        first = detect_node(fake, paths)  # includes the catalog's first load
        cold = time.perf_counter() - started
        timings = []
        for _ in range(RUNS):
            started = time.perf_counter()
            inventory = detect_node(fake, paths)
            timings.append(time.perf_counter() - started)
    assert inventory == first
    median = statistics.median(timings)
    p95 = sorted(timings)[int(RUNS * 0.95) - 1]
    print(f"detect 8x H100 NVSwitch node ({len(inventory.pairs)} GPU pairs, {RUNS} runs)")
    print(f"  first run (cold catalog): {cold * 1000:.1f} ms")
    print(
        f"  median: {median * 1000:.1f} ms   p95: {p95 * 1000:.1f} ms   goal: < {GOAL_S * 1000:.0f} ms"
    )
    print(f"  {'OK' if median < GOAL_S else 'OVER GOAL'}")
    return 0 if median < GOAL_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
