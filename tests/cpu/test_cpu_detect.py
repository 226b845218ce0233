"""`deploy detect --cpus` and the `--cpus` shorthand read cores, NUMA nodes and memory from
/proc and /sys: recorded machines replayed through the same `SystemPaths` seam, and this one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestrator.cli import cli
from orchestrator.errors import HardwareError
from orchestrator.hardware.cpu import (
    CpuSpec,
    detect_cpu,
    format_cpu_list,
    parse_cpu_list,
    parse_cpus,
)

from .conftest import write_tree


def test_recorded_kvm_guest(tmp_path: Path) -> None:
    spec = detect_cpu(write_tree("kvm-2core", tmp_path))
    assert (spec.cores, spec.numa_nodes, spec.cpu_lists) == (2, 1, ["0-1"])
    assert spec.memory_gib == pytest.approx(23.54, abs=0.01)
    assert spec.isa == ["avx512f", "avx2"]
    assert spec.model_name is not None and "Xeon" in spec.model_name


def test_two_sockets_with_smt_use_one_thread_per_core_and_the_cgroup_limit(
    tmp_path: Path,
) -> None:
    spec = detect_cpu(write_tree("two-socket-smt", tmp_path))
    # 16 logical CPUs, SMT siblings i and i+8: the first thread of each core, per socket.
    assert spec.cores == 8
    assert spec.cpu_lists == ["0-3", "4-7"]
    assert spec.numa_nodes == 2
    # 2 x 125.8 GiB of NUMA memory, capped by the 96 GiB cgroup limit.
    assert spec.memory_gib == 96.0
    assert spec.isa[0] == "amx_bf16"
    # AMX: 8 cores x 2.5 GHz x 1024 FLOP/cycle.
    assert spec.tflops == pytest.approx(20.48)


def test_a_restricted_cpuset_is_respected(tmp_path: Path) -> None:
    paths = write_tree("two-socket-smt", tmp_path)
    status = paths.proc / "self" / "status"
    status.write_text("Cpus_allowed_list:\t4-7,12-15\n", encoding="utf-8")
    spec = detect_cpu(paths)
    assert (spec.cores, spec.numa_nodes, spec.cpu_lists) == (4, 1, ["4-7"])


def test_shorthand_takes_this_machines_layout(tmp_path: Path) -> None:
    paths = write_tree("two-socket-smt", tmp_path)
    six = parse_cpus("6", paths)
    assert (six.cores, six.numa_nodes, six.cpu_lists) == (6, 2, ["0-3", "4-5"])
    assert six.memory_gib == 96.0
    stated = parse_cpus("32:256g", paths)
    assert (stated.cores, stated.numa_nodes, stated.memory_gib) == (32, 1, 256.0)
    assert parse_cpus("all", paths).cores == 8


@pytest.mark.parametrize("text", ["", "x", "0", "16:0", "16:abc", "5000", "-2"])
def test_bad_shorthand_is_one_line(text: str, tmp_path: Path) -> None:
    with pytest.raises(HardwareError) as caught:
        parse_cpus(text, write_tree("kvm-2core", tmp_path))
    assert "\n" not in str(caught.value) and "--cpus" in str(caught.value)


def test_cpu_lists_round_trip() -> None:
    assert parse_cpu_list("0-3,8,10-11") == [0, 1, 2, 3, 8, 10, 11]
    assert format_cpu_list([0, 1, 2, 3, 8, 10, 11]) == "0-3,8,10-11"
    assert parse_cpu_list("0-99999") == []
    assert parse_cpu_list("3-1") == []


def test_cpu_lists_must_match_cores() -> None:
    with pytest.raises(ValueError, match="cpu_lists name 4 CPUs but cores is 8"):
        CpuSpec(cores=8, numa_nodes=2, memory_gib=8, cpu_lists=["0-1", "2-3"])


def test_this_machine() -> None:
    spec = detect_cpu()
    allowed = os.sched_getaffinity(0)
    assert 1 <= spec.cores <= len(allowed)
    assert {cpu for cpus in spec.numa_cpus() for cpu in cpus} <= allowed
    total_kib = int(Path("/proc/meminfo").read_text().split()[1])
    assert 0 < spec.memory_gib <= total_kib / 2**20 + 0.01


def test_deploy_detect_cpus_json_is_a_cluster_file_mapping(cli_runner) -> None:  # type: ignore[no-untyped-def]
    result = cli_runner.invoke(cli, ["detect", "--cpus", "--json"])
    assert result.exit_code == 0, result.output
    spec = CpuSpec.model_validate(json.loads(result.stdout))
    assert spec == detect_cpu()
    text = cli_runner.invoke(cli, ["detect", "--cpus"])
    assert text.exit_code == 0 and f"cores     {spec.cores}" in text.stdout
