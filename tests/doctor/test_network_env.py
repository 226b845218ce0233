"""Rendering follows the cluster file's RDMA devices: NCCL_IB_HCA with exact names on RDMA
services, nothing on Ethernet clusters or in a rehearsal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

HCA = "=mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7"


def test_rdma_services_get_exact_hca_names(planned: Any, two_node_ib: Path) -> None:
    _, services = planned(model="llama-3.1-405b", cluster=two_node_ib, nodes=2)
    engines = [spec for spec in services if spec.role == "serve"]
    assert len(engines) == 2
    assert all(spec.environment["NCCL_IB_HCA"] == HCA for spec in engines)
    assert all("NCCL_IB_GID_INDEX" not in spec.environment for spec in engines)


def test_rehearsal_and_ethernet_get_none(planned: Any, two_node_ib: Path, tmp_path: Path) -> None:
    _, rehearsal = planned(simulate=True, model="llama-3.1-405b", cluster=two_node_ib, nodes=2)
    assert all("NCCL_IB_HCA" not in spec.environment for spec in rehearsal)
    ethernet = tmp_path / "eth.yaml"
    ethernet.write_text(
        two_node_ib.read_text(encoding="utf-8").replace("fabric: infiniband", "fabric: ethernet"),
        encoding="utf-8",
    )
    _, services = planned(model="llama-3.1-405b", cluster=ethernet, nodes=2)
    assert all("NCCL_IB_HCA" not in spec.environment for spec in services)
