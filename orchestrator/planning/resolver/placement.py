"""Placement: which node and GPU indices each engine instance gets.

An instance that fits in one node takes a block of consecutive GPUs, aligned to its size, so
each TP group stays inside one NVLink domain whenever the node's domains allow it. Bigger
instances take whole consecutive nodes. Replicas are laid out node by node until the GPU
budget (`--max-gpus`, or a disaggregated pool) is used up.
"""

from __future__ import annotations

from orchestrator.hardware.model import Node
from orchestrator.plan import NodeSlice, Replica
from orchestrator.planning.resolver.context import Shape
from orchestrator.planning.resolver.rules import node_span


def _blocks(node: Node, size: int) -> list[list[int]]:
    """Aligned blocks of `size` consecutive GPU indices, in index order."""
    indices = sorted(gpu.index for gpu in node.gpus)
    return [indices[start : start + size] for start in range(0, len(indices) - size + 1, size)]


def tp_group_in_domain(node: Node, gpus: list[int], tp: int) -> bool:
    """Whether every TP group (consecutive `tp` GPUs of `gpus`) sits inside one NVLink domain."""
    domains = [set(domain) for domain in node.nvlink_domains]
    for start in range(0, len(gpus), tp):
        group = set(gpus[start : start + tp])
        if len(group) > 1 and not any(group <= domain for domain in domains):
            return False
    return True


def _block_order(node: Node, blocks: list[list[int]], tp: int) -> list[list[int]]:
    # Blocks whose TP groups keep to one NVLink domain first; index order otherwise, so the
    # same input always gives the same placement.
    return sorted(blocks, key=lambda block: (not tp_group_in_domain(node, block, tp), block))


def place(shape: Shape, nodes: list[Node], budget: int) -> list[Replica]:
    """As many instances of `shape` as fit on `nodes` within `budget` GPUs."""
    if not nodes or shape.gpus > budget:
        return []
    gpn = nodes[0].gpu_count
    span = node_span(shape, gpn)
    if span is None:
        return []
    nnodes, per_node = span
    replicas: list[Replica] = []
    used = 0
    if nnodes == 1:
        for node in nodes:
            if node.gpu_count < per_node:
                continue
            for block in _block_order(node, _blocks(node, per_node), shape.tp):
                if used + shape.gpus > budget:
                    return replicas
                replicas.append(
                    Replica(index=len(replicas), slices=[NodeSlice(node=node.name, gpus=block)])
                )
                used += shape.gpus
        return replicas
    eligible = [node for node in nodes if node.gpu_count >= per_node]
    for start in range(0, len(eligible) - nnodes + 1, nnodes):
        if used + shape.gpus > budget:
            break
        group = eligible[start : start + nnodes]
        slices = [
            NodeSlice(node=node.name, gpus=sorted(gpu.index for gpu in node.gpus)[:per_node])
            for node in group
        ]
        replicas.append(Replica(index=len(replicas), slices=slices))
        used += shape.gpus
    return replicas


def tp_within_domains(replicas: list[Replica], nodes: list[Node], tp: int) -> bool:
    """Whether the placed TP groups of the first replica keep to NVLink domains inside each node.

    A TP group spanning nodes counts its per-node piece: the network between nodes is judged
    by the fabric rules, not here.
    """
    if not replicas:
        return True
    by_name = {node.name: node for node in nodes}
    return all(
        tp_group_in_domain(by_name[piece.node], piece.gpus, min(tp, len(piece.gpus)))
        for piece in replicas[0].slices
    )


def subset_node(node: Node, gpus: list[int]) -> Node:
    """The same node restricted to `gpus` (for a disaggregated pool sharing a node)."""
    keep = set(gpus)
    domains = [[index for index in domain if index in keep] for domain in node.nvlink_domains]
    return node.model_copy(
        update={
            "gpus": [gpu for gpu in node.gpus if gpu.index in keep],
            "nvlink_domains": [domain for domain in domains if domain],
        }
    )
