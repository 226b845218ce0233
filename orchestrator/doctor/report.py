"""The doctor's result: one line per check and node, and the JSON contract.

`deploy doctor --json` prints `{"checks": [{"node", "check", "status", "detail", "fix"}], "ok"}`.
`check` is a short stable id (`docker`, `gpu-runtime`, `gpus`, `driver-cuda`, `p2p`, `shm`, ...)
that scripts may match on; `detail` names what was found; `fix` says what to change, in the
user's words, and is empty when there is nothing to change.
"""

from __future__ import annotations

from typing import Literal

from orchestrator.base import Strict

Status = Literal["pass", "warn", "fail", "skip"]

# Stable check ids, in the order they are reported for a node.
CHECK_IDS = (
    "docker",
    "gpu-runtime",
    "image",
    "probe",
    "gpus",
    "inventory",
    "mig",
    "gpu-memory",
    "driver-cuda",
    "p2p",
    "shm",
    "memlock",
    "rdma",
    "nccl-ib-hca",
    "interface",
    "ports",
    "reachability",
    "clock",
    "disk",
    "hub-token",
)


class Check(Strict):
    node: str
    check: str
    status: Status
    detail: str
    fix: str = ""


class DoctorReport(Strict):
    checks: list[Check]
    ok: bool

    @classmethod
    def of(cls, checks: list[Check]) -> DoctorReport:
        order = {name: index for index, name in enumerate(CHECK_IDS)}
        ordered = sorted(checks, key=lambda c: (c.node, order.get(c.check, len(order))))
        return cls(checks=ordered, ok=not any(c.status == "fail" for c in checks))

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status == "fail"]


def passed(node: str, check: str, detail: str) -> Check:
    return Check(node=node, check=check, status="pass", detail=detail)


def warned(node: str, check: str, detail: str, fix: str) -> Check:
    return Check(node=node, check=check, status="warn", detail=detail, fix=fix)


def failed(node: str, check: str, detail: str, fix: str) -> Check:
    return Check(node=node, check=check, status="fail", detail=detail, fix=fix)


def skipped(node: str, check: str, detail: str) -> Check:
    return Check(node=node, check=check, status="skip", detail=detail)


def format_report(report: DoctorReport) -> str:
    """One line per check (`STATUS node check: detail`), the fix indented under it."""
    lines = []
    for check in report.checks:
        lines.append(f"{check.status.upper():4}  {check.node}  {check.check}: {check.detail}")
        if check.fix and check.status in ("warn", "fail"):
            lines.append(f"      fix: {check.fix}")
    fails = len(report.failures)
    warns = sum(1 for check in report.checks if check.status == "warn")
    verdict = "ok" if report.ok else f"{fails} failed"
    lines.append(f"doctor: {verdict} ({len(report.checks)} checks, {warns} warnings)")
    return "\n".join(lines)
