"""The fake must answer like pynvml: same names, signatures, return types and errors."""

from __future__ import annotations

import ctypes
import inspect
import json
from pathlib import Path

import pynvml
import pytest

from orchestrator.hardware.replay.nvml import FakeNvml


def _fake(fixtures_dir: Path, name: str = "h100-sxm-8-nvswitch") -> FakeNvml:
    return FakeNvml.from_file(fixtures_dir / f"{name}.json")


def test_every_replayed_function_has_pynvml_name_and_signature(fixtures_dir: Path) -> None:
    fake = _fake(fixtures_dir)
    replayed = [name for name in dir(type(fake)) if name.startswith("nvml")]
    assert len(replayed) >= 28
    for name in replayed:
        real = getattr(pynvml, name)
        real_params = list(inspect.signature(real).parameters)
        fake_params = list(inspect.signature(getattr(fake, name)).parameters)
        assert fake_params == real_params, name


def test_calls_before_init_raise_uninitialized(fixtures_dir: Path) -> None:
    fake = _fake(fixtures_dir)
    with pytest.raises(pynvml.NVMLError_Uninitialized) as caught:
        fake.nvmlDeviceGetCount()
    assert caught.value.value == pynvml.NVML_ERROR_UNINITIALIZED
    assert str(caught.value) == "Uninitialized"


def test_unsupported_queries_raise_the_real_error_class(fixtures_dir: Path) -> None:
    fake = _fake(fixtures_dir, "rtx4090-4-pcie-2numa")
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_NotSupported) as caught:
        fake.nvmlDeviceGetNvLinkState(handle, 0)
    assert caught.value.value == pynvml.NVML_ERROR_NOT_SUPPORTED
    assert isinstance(caught.value, pynvml.NVMLError)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        fake.nvmlDeviceGetMigMode(handle)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        fake.nvmlDeviceGetHandleByIndex(4)


def test_returns_real_ctypes_structures(fixtures_dir: Path) -> None:
    fake = _fake(fixtures_dir)
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(3)
    pci = fake.nvmlDeviceGetPciInfo(handle)
    assert isinstance(pci, pynvml.nvmlPciInfo_t)
    assert pci.busId == "00000000:61:00.0"  # pynvml decodes char fields to str
    assert pci.bus == 0x61
    memory = fake.nvmlDeviceGetMemoryInfo(handle)
    assert isinstance(memory, pynvml.c_nvmlMemory_t)
    assert memory.total == 85520809984
    remote = fake.nvmlDeviceGetNvLinkRemotePciInfo(handle, 17)
    assert remote.busId == "00000000:08:00.0"
    assert (
        fake.nvmlDeviceGetNvLinkRemoteDeviceType(handle, 17)
        == pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH
    )
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        fake.nvmlDeviceGetNvLinkState(handle, 18)
    info = pynvml.c_nvmlGpuFabricInfoV_t()
    assert fake.nvmlDeviceGetGpuFabricInfoV(handle, ctypes.byref(info)) == pynvml.NVML_SUCCESS
    assert info.state == pynvml.NVML_GPU_FABRIC_STATE_COMPLETED
    legacy = pynvml.c_nvmlGpuFabricInfo_t()
    with pytest.raises(pynvml.NVMLError_ArgumentVersionMismatch):
        fake.nvmlDeviceGetGpuFabricInfoV(handle, ctypes.byref(legacy))


def test_p2p_index_must_be_an_int_as_in_ctypes(fixtures_dir: Path) -> None:
    fake = _fake(fixtures_dir)
    fake.nvmlInit()
    a, b = fake.nvmlDeviceGetHandleByIndex(0), fake.nvmlDeviceGetHandleByIndex(1)
    # pynvml defines NVML_P2P_CAPS_INDEX_READ as the tuple (0,): passing it fails in ctypes.
    assert pynvml.NVML_P2P_CAPS_INDEX_READ == (0,)
    with pytest.raises(ctypes.ArgumentError):
        fake.nvmlDeviceGetP2PStatus(a, b, pynvml.NVML_P2P_CAPS_INDEX_READ)
    assert fake.nvmlDeviceGetP2PStatus(a, b, 0) == pynvml.NVML_P2P_STATUS_OK


def test_init_error_is_replayed(tmp_path: Path, fixtures_dir: Path) -> None:
    topology = json.loads((fixtures_dir / "l40s-2.json").read_text())
    topology["init_error"] = "DRIVER_NOT_LOADED"
    fake = FakeNvml(topology)
    with pytest.raises(pynvml.NVMLError_DriverNotLoaded):
        fake.nvmlInit()


def test_constants_come_from_pynvml(fixtures_dir: Path) -> None:
    fake = _fake(fixtures_dir)
    assert fake.NVMLError is pynvml.NVMLError
    assert fake.NVML_TOPOLOGY_SYSTEM == pynvml.NVML_TOPOLOGY_SYSTEM
    with pytest.raises(AttributeError, match="does not replay nvmlDeviceGetPowerUsage"):
        _ = fake.nvmlDeviceGetPowerUsage
