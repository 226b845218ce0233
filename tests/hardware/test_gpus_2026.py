"""GPUs of 2026: sourced catalog entries, NVL72 domains across trays, names never replaced."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from orchestrator.errors import CatalogError, HardwareError
from orchestrator.hardware import cluster_from_shorthand
from orchestrator.hardware.cluster_file import load_cluster
from orchestrator.hardware.gpus import find_gpu, gpu_from_nvml_name
from orchestrator.hardware.inventory import FabricInfo
from orchestrator.hardware.nodes import fabric_domain
from orchestrator.planning.build import build_plan
from orchestrator.planning.request import PlanRequest

REPO = Path(__file__).resolve().parents[2]

NEW_GPUS = {
    "B300": ("B300-288GB-SXM", 8000, None),
    "GB200": ("GB200-186GB-NVL72", 8000, 72),
    "GB300": ("GB300-288GB-NVL72", 8000, 72),
    "MI325X": ("MI325X-256GB", 6000, None),
    "MI355X": ("MI355X-288GB", 8000, None),
    "H20-141GB": ("H20-141GB", 4800, None),
    "RTX PRO 6000 Server": ("RTX-PRO-6000-96GB-Server", 1597, None),
}


@pytest.mark.parametrize("typed", sorted(NEW_GPUS))
def test_2026_gpus_have_sourced_figures(typed: str) -> None:
    name, bandwidth, domain = NEW_GPUS[typed]
    spec = find_gpu(typed)
    assert spec.name == name
    assert spec.sources, "every figure cites its datasheet"
    assert spec.memory_bandwidth_gbs == bandwidth
    assert spec.bf16_tflops > 0 and spec.fp8_tflops and spec.supports_fp8
    assert (spec.nvlink.domain_gpus if spec.nvlink else None) == domain


def test_nvml_names_pick_the_board_by_memory() -> None:
    assert gpu_from_nvml_name("NVIDIA H20", 141 * 10**9).name == "H20-141GB"  # type: ignore[union-attr]
    assert gpu_from_nvml_name("NVIDIA H20", 96 * 10**9).name == "H20-96GB"  # type: ignore[union-attr]
    rtx = gpu_from_nvml_name("NVIDIA RTX PRO 6000 Blackwell Server Edition")
    assert rtx is not None and rtx.name == "RTX-PRO-6000-96GB-Server"


@pytest.mark.parametrize("typed", ["GB400", "GB100", "MI999X", "H300"])
def test_a_typed_name_that_matches_no_gpu_is_refused_with_suggestions(typed: str) -> None:
    with pytest.raises(CatalogError) as caught:
        find_gpu(typed)
    message = str(caught.value)
    assert message.startswith(f"unknown GPU {typed!r}") and "\n" not in message
    assert "deploy profiles list --gpus" in message
    with pytest.raises(HardwareError):
        cluster_from_shorthand(f"4x{typed}")


def test_4x_gb300_plans_on_gb300_and_a_typo_exits_2() -> None:
    def deploy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    planned = deploy("plan", "qwen3-32b", "--gpus", "4xGB300")
    assert planned.returncode == 0, planned.stderr
    assert "GB300-288GB-NVL72" in planned.stdout and "MI300X" not in planned.stdout
    refused = deploy("plan", "qwen3-32b", "--gpus", "4xGB400")
    assert refused.returncode == 2
    assert refused.stdout == ""
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown GPU 'GB400'" in lines[0] and "did you mean" in lines[0]


def test_nvl72_shorthand_puts_18_trays_in_one_nvlink_domain() -> None:
    cluster = cluster_from_shorthand("4xGB300", nodes=20)
    domains = [node.nvlink_domain for node in cluster.nodes]
    assert domains[:18] == ["nvl1"] * 18 and domains[18:] == ["nvl2"] * 2
    assert cluster.share_nvlink_domain(["node1", "node18"])
    assert not cluster.share_nvlink_domain(["node18", "node19"])
    # An HGX node's NVLink ends at the node.
    assert cluster_from_shorthand("8xB300", nodes=2).nodes_per_nvlink_domain == 1


def test_cluster_files_declare_a_domain_across_nodes(tmp_path: Path) -> None:
    path = tmp_path / "rack.yaml"
    path.write_text(_cluster_yaml(domain=True), encoding="utf-8")
    cluster = load_cluster(path)
    assert [node.nvlink_domain for node in cluster.nodes] == ["rack1", "rack1"]
    assert cluster.nodes_per_nvlink_domain == 2


def test_nvml_fabric_registration_names_the_domain(detect_recorded: Any) -> None:
    inventory = detect_recorded("h100-sxm-8-nvswitch")
    assert fabric_domain(inventory) is None
    fabric = FabricInfo(state="completed", status="SUCCESS", cluster_uuid="c0ffee", clique_id=7)
    gpus = [gpu.model_copy(update={"fabric": fabric}) for gpu in inventory.gpus]
    assert fabric_domain(inventory.model_copy(update={"gpus": gpus})) == "c0ffee/7"


def _cluster_yaml(*, domain: bool) -> str:
    line = "  nvlink_domain: rack1\n" if domain else ""
    return dedent(
        """
        name: nvl
        fabric: ethernet
        defaults:
          gpus: 4xGB300
        {line}nodes:
          - {{name: tray1, address: 192.0.2.1}}
          - {{name: tray2, address: 192.0.2.2}}
        """
    ).format(line=line)


def test_tp_across_trays_of_one_rack_is_planned_as_nvlink(tmp_path: Path) -> None:
    results = {}
    for domain in (True, False):
        path = tmp_path / f"rack-{domain}.yaml"
        path.write_text(_cluster_yaml(domain=domain), encoding="utf-8")
        plan = build_plan(PlanRequest(model="qwen3-32b", cluster=path, tp=8))
        assert plan.parallelism.tp == 8 and plan.hardware.nodes == 2
        results[domain] = plan
    inside, outside = results[True], results[False]
    assert inside.prediction is not None and outside.prediction is not None
    # Across the rack's NVLink the TP all-reduce is not the Ethernet's.
    assert inside.prediction.tpot_ms < outside.prediction.tpot_ms
    assert not any("InfiniBand" in line for line in inside.rationale + inside.warnings)
    assert any("InfiniBand" in line for line in outside.rationale + outside.warnings)


def test_a_plan_on_an_unknown_detected_gpu_states_its_assumptions(
    tmp_path: Path, detect_recorded: Any
) -> None:
    inventory = detect_recorded("l40s-2")
    renamed = [gpu.model_copy(update={"name": "NVIDIA Quantum Q1"}) for gpu in inventory.gpus]
    (tmp_path / "node.json").write_text(
        inventory.model_copy(update={"gpus": renamed}).model_dump_json()
    )
    path = tmp_path / "cluster.yaml"
    path.write_text("nodes:\n  - {name: q1, address: 192.0.2.9, inventory: node.json}\n")
    plan = build_plan(PlanRequest(model="qwen3-8b", cluster=path))
    assert plan.hardware.gpu == "NVIDIA Quantum Q1"
    assert plan.warnings[0].startswith("GPU 'NVIDIA Quantum Q1' is not in the catalog")
    assert plan.warnings[1].startswith("assumed like L40S")
    # The same process renders it: the engines' GPU lookups find the detected GPU.
    from orchestrator.engines import build_services
    from orchestrator.targets.compose.render import render_deployment

    written = render_deployment(plan, build_services(plan), tmp_path / "out")
    assert written and find_gpu("NVIDIA Quantum Q1").assumed


def test_a_whole_rack_typed_as_one_node_is_refused_with_the_tray_layout(tmp_path: Path) -> None:
    with pytest.raises(HardwareError) as caught:
        cluster_from_shorthand("72xGB200")
    message = str(caught.value)
    assert "holds 4 GPUs, not 72" in message and "4xgb200 with 18 nodes" in message
    path = tmp_path / "rack.yaml"
    path.write_text("nodes:\n  - {name: a, address: 192.0.2.1, gpus: 8xGB300}\n")
    with pytest.raises(HardwareError, match=r"rack.yaml:2: .*holds 4 GPUs, not 8"):
        load_cluster(path)
