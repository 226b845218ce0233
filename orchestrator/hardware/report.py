"""The readable form of a node inventory: a matrix like `nvidia-smi topo -m`, then the facts
the planner uses (NVLink domains, NUMA split, network, RDMA) and warnings."""

from __future__ import annotations

from orchestrator.hardware.inventory import NodeInventory

LEGEND = """Legend:
  X    = self
  SYS  = PCIe and the interconnect between NUMA nodes (QPI/UPI/xGMI)
  NODE = PCIe and the interconnect between PCIe host bridges within a NUMA node
  PHB  = PCIe and a PCIe host bridge (typically the CPU)
  PXB  = several PCIe bridges, without a host bridge
  PIX  = at most one PCIe bridge
  NV#  = a bonded set of # NVLinks (directly or through NVSwitches)"""
# Expected to fail on every non-coherent platform: not worth a line in the readable output.
_QUIET_QUERIES = {"numa_node_id"}


def _ranges(indices: list[int]) -> str:
    if len(indices) > 2 and indices == list(range(indices[0], indices[-1] + 1)):
        return f"{indices[0]}-{indices[-1]}"
    return ",".join(str(index) for index in indices)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def format_inventory(inventory: NodeInventory) -> str:
    gpus = inventory.gpus
    names = sorted({gpu.name for gpu in gpus})
    catalog = sorted({gpu.catalog_name for gpu in gpus if gpu.catalog_name})
    known = f" ({', '.join(catalog)})" if catalog else " (not in the catalog)"
    versions = [
        f"driver {inventory.driver_version}" if inventory.driver_version else None,
        f"CUDA {inventory.cuda_driver_version}" if inventory.cuda_driver_version else None,
    ]
    lines = [
        f"{inventory.hostname or 'this node'}: {len(gpus)}x {' + '.join(names)}{known}"
        + "".join(f", {version}" for version in versions if version),
        "",
    ]
    header = ["", *[f"GPU{gpu.index}" for gpu in gpus], "CPU Affinity", "NUMA", "NIC"]
    rows = [header]
    for gpu in gpus:
        cells = [f"GPU{gpu.index}"]
        for other in gpus:
            pair = inventory.pair(gpu.index, other.index)
            cells.append("X" if other.index == gpu.index else pair.level if pair else "N/A")
        cells.append(gpu.cpu_affinity or "N/A")
        cells.append(str(gpu.numa_node) if gpu.numa_node is not None else "N/A")
        cells.append(inventory.gpu_rdma.get(gpu.index, "-"))
        rows.append(cells)
    lines += _table(rows)
    lines += ["", LEGEND, ""]
    gpu_rows = [["GPU", "Name", "Memory", "CC", "PCI bus", "MIG"]]
    for gpu in gpus:
        mig = "n/a" if gpu.mig is None else ("on" if gpu.mig.enabled else "off")
        if gpu.mig and gpu.mig.enabled:
            mig += f" ({len(gpu.mig.devices)} instances)"
        gpu_rows.append(
            [
                str(gpu.index),
                gpu.name,
                f"{gpu.memory_gib:.1f} GiB",
                gpu.compute_capability or "?",
                gpu.pci_bus_id or "?",
                mig,
            ]
        )
    lines += _table(gpu_rows)
    domains = " ".join(f"[{_ranges(domain)}]" for domain in inventory.nvlink_domains)
    lines += [
        "",
        f"Interconnect: {inventory.interconnect}",
        f"NVLink domains: {domains}",
        f"NUMA nodes with GPUs: {inventory.numa_nodes}",
        f"Network interface: {inventory.network_interface or 'none found'}",
        f"Fabric: {inventory.fabric}",
    ]
    if inventory.rdma_devices:
        groups: list[tuple[list[str], str]] = []
        for device in inventory.rdma_devices:
            port = device.ports[0] if device.ports else None
            rate = f" {port.rate_gbps:g} Gb/s" if port and port.rate_gbps else ""
            state = port.state if port else "no ports"
            description = f"{device.link_layer or '?'}{rate}, {state}"
            if groups and groups[-1][1] == description:
                groups[-1][0].append(device.name)
            else:
                groups.append(([device.name], description))
        parts = [
            f"{names[0] if len(names) == 1 else names[0] + '..' + names[-1]} ({description})"
            for names, description in groups
        ]
        lines.append(f"RDMA devices: {', '.join(parts)}")
    else:
        lines.append("RDMA devices: none")
    unsupported = sorted({query for gpu in gpus for query in gpu.unsupported} - _QUIET_QUERIES)
    if unsupported:
        lines.append(f"Not reported by this driver/GPU: {', '.join(unsupported)}")
    for warning in inventory.warnings:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)
