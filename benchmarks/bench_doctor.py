"""How long a whole `deploy doctor` takes on a 2-node cluster (goal: under 15 s).

The cluster's two nodes are this machine's Docker Engine reached as two nodes: node0 at
127.0.0.1, node1 at this machine's default-route address, so node0's probe really connects
to node1's published port. `--simulate` runs the probes in the simulator image (no GPU
here). Every check runs: Docker facts, the probe container on each node, the peer
connections, and the Hub token check (which is as slow as the Hub, or as DNS when offline).

Figures: the library call (median and worst of RUNS), and the `deploy doctor` command as a
process (imports included), once.

Needs a Docker daemon and `deploy-sim:latest` (docker/build-sim-image.sh); prints a note and
exits 0 without them.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.docker.endpoints import Endpoints, connect  # noqa: E402
from orchestrator.doctor.probe import Roots, interface_addresses  # noqa: E402
from orchestrator.doctor.run import DoctorOptions, run_doctor  # noqa: E402
from orchestrator.engines import build_services  # noqa: E402
from orchestrator.errors import DockerUnavailableError  # noqa: E402
from orchestrator.planning.build import build_plan  # noqa: E402
from orchestrator.planning.request import PlanRequest  # noqa: E402

GOAL_S = 15.0
RUNS = 5
MODEL = "qwen3-8b"


def host_address() -> str | None:
    """An IPv4 address of this machine other than loopback (the default route's first)."""
    route = Path("/proc/net/route").read_text(encoding="utf-8").splitlines()[1:]
    default = [line.split()[0] for line in route if line.split()[1] == "00000000"]
    addresses = interface_addresses(Roots())
    for name in default + sorted(addresses):
        for address in addresses.get(name, []):
            if not address.startswith("127."):
                return address
    return None


def main() -> int:
    try:
        connect("unix:///var/run/docker.sock").close()
    except DockerUnavailableError as error:
        print(f"skipped: {error}")
        return 0
    address = host_address()
    if address is None:
        print("skipped: this machine has no non-loopback IPv4 address")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Path(tmp) / "two.yaml"
        cluster.write_text(
            "defaults: {gpus: 1xH100-80GB-SXM, docker: 'unix:///var/run/docker.sock'}\n"
            "nodes:\n"
            "  - {name: node0, address: 127.0.0.1}\n"
            f"  - {{name: node1, address: {address}}}\n",
            encoding="utf-8",
        )
        plan = build_plan(PlanRequest.from_options(model=MODEL, cluster=cluster, nodes=2))
        services = build_services(plan, simulate=True)
        seconds = []
        with Endpoints() as endpoints:
            for _ in range(RUNS):
                started = time.perf_counter()
                report = run_doctor(
                    plan, services, endpoints=endpoints, options=DoctorOptions(simulate=True)
                )
                seconds.append(time.perf_counter() - started)
        reach = [c for c in report.checks if c.check == "reachability" and c.status == "pass"]
        print(
            f"checks per run: {len(report.checks)}, ok: {report.ok}, reachability passes: {len(reach)}"
        )
        for check in report.checks:
            if check.status in ("fail", "warn"):
                print(f"  {check.status} {check.node} {check.check}: {check.detail}")
        print(
            f"doctor, 2 nodes, library call: median {statistics.median(seconds):.2f} s,"
            f" worst {max(seconds):.2f} s over {RUNS} runs (goal < {GOAL_S:.0f} s)"
        )
        command = [
            sys.executable,
            "-c",
            "from orchestrator.cli import main; main()",
            "doctor",
            MODEL,
        ]
        command += ["--cluster", str(cluster), "--nodes", "2", "--simulate"]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        print(f"`deploy doctor` as a process: {elapsed:.2f} s (exit {result.returncode})")
    worst = max(max(seconds), elapsed)
    print(f"goal {'met' if worst < GOAL_S else 'MISSED'}: worst {worst:.2f} s < {GOAL_S:.0f} s")
    return 0 if worst < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
