"""Restart units, dependency order and backoff, without Docker."""

from __future__ import annotations

import pytest

from orchestrator.errors import InputError
from orchestrator.runtime.units import backoff_delay, build_units, dependency_depth
from orchestrator.spec import Probe, ServiceSpec
from orchestrator.state import NodeInfo

NODES = {"a": NodeInfo(name="a"), "b": NodeInfo(name="b", docker="ssh://ops@b")}


def svc(
    name: str, node: str = "a", group: str | None = None, deps: list[str] | None = None
) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        node=node,
        role="serve",
        image="i",
        command=[],
        group=group,
        depends_on=deps or [],
        probe=Probe(kind="process", start_period_s=1),
    )


def test_ranks_of_a_group_form_one_unit_and_routers_depend_on_it() -> None:
    units = build_units(
        [
            svc("serve-0-rank0", "a", "serve-0"),
            svc("serve-0-rank1", "b", "serve-0"),
            svc("serve-1", "a"),
            svc("router", "a", deps=["serve-0-rank0", "serve-0-rank1", "serve-1"]),
        ],
        NODES,
    )
    assert sorted(units) == ["router", "serve-0", "serve-1"]
    assert [m.spec.name for m in units["serve-0"].members] == ["serve-0-rank0", "serve-0-rank1"]
    assert units["serve-0"].members[1].node.docker == "ssh://ops@b"
    assert units["router"].depends_on == {"serve-0", "serve-1"}
    assert dependency_depth(units) == 2


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([svc("x"), svc("x")], "duplicate service names: x"),
        ([svc("x", node="c")], "service x runs on unknown node 'c'; known nodes: a, b"),
        ([svc("x", deps=["y"])], "service x depends on unknown service 'y'"),
        (
            [svc("x", deps=["y"]), svc("y", deps=["x"])],
            "services depend on each other in a cycle: x, y",
        ),
    ],
)
def test_bad_service_lists_are_input_errors(specs: list[ServiceSpec], message: str) -> None:
    with pytest.raises(InputError) as caught:
        build_units(specs, NODES)
    assert str(caught.value).startswith(message)


def test_backoff_is_free_once_then_doubles_up_to_the_cap() -> None:
    delays = [backoff_delay(n, 1.0, 30.0) for n in range(1, 9)]
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
