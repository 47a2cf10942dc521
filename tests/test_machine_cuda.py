"""NVML lookups by UUID and the clock watch, on CPU with a fake pynvml and torch.cuda's device
properties patched (CUDA_VISIBLE_DEVICES reorders what torch sees; NVML keeps its own order)."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest
import torch

from normbench import env, machine_cuda
from normbench.machine_cuda import NvmlWatch, nvml_handle, reason_words, sample_active

UUID_A = "11111111-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
UUID_B = "22222222-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
UUID_MIG = "33333333-cccc-4ccc-8ccc-cccccccccccc"


class NVMLError(Exception):
    pass


class Handle:
    def __init__(self, name: str, uuid: str, memory_gib: float = 80.0, mig_of=None) -> None:
        self.name, self.uuid, self.memory_gib, self.mig_of = name, uuid, memory_gib, mig_of

    def __repr__(self) -> str:
        return self.name


def fake_pynvml(gpus: list[Handle], migs: dict[str, list[Handle]] | None = None, by_mig=True):
    """A pynvml with NVML's constants (the values nvidia-ml-py defines) and `gpus` in NVML's
    order; `migs`: MIG instances per GPU name; by_mig=False: an older driver whose lookup by
    UUID does not know MIG UUIDs."""
    migs = migs or {}
    m = types.ModuleType("pynvml")
    m.NVMLError = NVMLError
    m.NVML_CLOCK_SM, m.NVML_CLOCK_MEM, m.NVML_TEMPERATURE_GPU = 1, 2, 0
    bits = dict(GpuIdle=0x1, ApplicationsClocksSetting=0x2, SwPowerCap=0x4, HwSlowdown=0x8,
                SyncBoost=0x10, SwThermalSlowdown=0x20, HwThermalSlowdown=0x40,
                HwPowerBrakeSlowdown=0x80, DisplayClockSetting=0x100)  # fmt: skip
    for name, bit in bits.items():
        setattr(m, "nvmlClocksEventReason" + name, bit)
    m.calls = {"init": 0, "shutdown": 0}
    m.reads: list[int | Exception] = []  # reasons, one per read
    m.clocks: list[int | Exception] = []
    m.max_clock = 1980
    every = list(gpus) + [h for hs in migs.values() for h in hs]

    def init():
        m.calls["init"] += 1

    def shutdown():
        m.calls["shutdown"] += 1

    def by_uuid(uuid):
        for h in every:
            known = f"{'MIG' if h.mig_of else 'GPU'}-{h.uuid}"
            if uuid == known and (by_mig or not h.mig_of):
                return h
        raise NVMLError("Not Found")

    def by_pci(bus):
        for h in gpus:
            if getattr(h, "pci", None) == bus:
                return h
        raise NVMLError("Not Found")

    def mig_by_index(gpu, j):
        try:
            return migs[gpu.name][j]
        except (KeyError, IndexError):
            raise NVMLError("Not Found") from None

    def reasons(h):
        r = m.reads.pop(0)
        if isinstance(r, Exception):
            raise r
        return r

    def clock(h, kind):
        c = m.clocks.pop(0)
        if isinstance(c, Exception):
            raise c
        return c

    m.nvmlInit, m.nvmlShutdown = init, shutdown
    m.nvmlDeviceGetHandleByUUID = by_uuid
    m.nvmlDeviceGetHandleByPciBusId = by_pci
    m.nvmlDeviceGetHandleByIndex = lambda i: gpus[i]
    m.nvmlDeviceGetCount = lambda: len(gpus)
    m.nvmlDeviceGetUUID = lambda h: f"{'MIG' if h.mig_of else 'GPU'}-{h.uuid}"
    m.nvmlDeviceGetMaxMigDeviceCount = lambda h: len(migs.get(h.name, []))
    m.nvmlDeviceGetMigDeviceHandleByIndex = mig_by_index
    m.nvmlDeviceIsMigDeviceHandle = lambda h: h.mig_of is not None
    m.nvmlDeviceGetDeviceHandleFromMigDeviceHandle = lambda h: h.mig_of
    m.nvmlDeviceGetCurrentClocksEventReasons = reasons
    m.nvmlDeviceGetClockInfo = clock
    m.nvmlDeviceGetMaxClockInfo = lambda h, kind: m.max_clock
    m.nvmlSystemGetDriverVersion = lambda: b"570.86"
    m.nvmlDeviceGetMemoryInfo = lambda h: SimpleNamespace(total=int(h.memory_gib * 2**30))
    m.nvmlDeviceGetTemperature = lambda h, kind: 41
    m.nvmlDeviceGetPowerUsage = lambda h: 123_400
    return m


@pytest.fixture
def two_gpus(monkeypatch):
    """NVML sees A then B (PCI order); CUDA_VISIBLE_DEVICES=1,0 makes torch's cuda:0 B."""
    a = Handle("A", UUID_A, memory_gib=80.0)
    b = Handle("B", UUID_B, memory_gib=141.0)
    m = fake_pynvml([a, b])
    monkeypatch.setitem(sys.modules, "pynvml", m)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    nvml_order = [a, b]

    def props(index):
        visible = [int(x) for x in __import__("os").environ["CUDA_VISIBLE_DEVICES"].split(",")]
        return SimpleNamespace(uuid=nvml_order[visible[index]].uuid, L2_cache_size=50 << 20)

    monkeypatch.setattr(torch.cuda, "get_device_properties", props)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    return m, a, b


def test_handle_follows_the_uuid_not_the_index(two_gpus):
    m, a, b = two_gpus
    assert m.nvmlDeviceGetHandleByIndex(0) is a  # what the CUDA index used to find
    assert nvml_handle("cuda:0") == (b, "")
    assert nvml_handle("cuda") == (b, "")  # the current device
    assert nvml_handle("cuda:1") == (a, "")


def test_env_facts_are_the_right_gpus(two_gpus):
    m, a, b = two_gpus
    m.clocks[:] = [1755, 2619]  # SM, memory
    info = env._nvml(0)
    assert info["nvml"] == "ok"
    assert (info["sm_clock_mhz"], info["mem_clock_mhz"], info["max_sm_clock_mhz"]) == (
        1755,
        2619,
        1980,
    )
    assert info["gpu_memory_gib"] == 141.0  # B's, not A's 80
    assert (info["driver"], info["power_w"], info["temperature_c"]) == ("570.86", 123.4, 41)
    assert m.calls["init"] == m.calls["shutdown"] == 1


def test_mig_instance_gives_its_gpus_handle(monkeypatch):
    gpu = Handle("G", UUID_A)
    mig = Handle("G/1", UUID_MIG, mig_of=gpu)
    for by_mig in (True, False):  # looked up directly, or found among the GPU's MIG instances
        monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([gpu], {"G": [mig]}, by_mig))
        monkeypatch.setattr(
            torch.cuda, "get_device_properties", lambda i: SimpleNamespace(uuid=UUID_MIG)
        )
        assert nvml_handle("cuda:0") == (gpu, "")


def test_pci_bus_id_when_the_uuid_is_unknown(monkeypatch):
    gpu = Handle("P", UUID_A)
    gpu.pci = "00000000:3B:00.0"
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([gpu]))
    props = SimpleNamespace(uuid=UUID_B, pci_domain_id=0, pci_bus_id=0x3B, pci_device_id=0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    assert nvml_handle("cuda:0") == (gpu, "")


def test_no_handle_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([Handle("A", UUID_A)]))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(uuid=UUID_B))
    handle, why = nvml_handle("cuda:0")
    assert handle is None
    assert why == f"no NVML device has the UUID {UUID_B} or PCI bus id ? of cuda:0"
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    assert nvml_handle("cuda:0") == (None, "pynvml not installed (pip install nvidia-ml-py)")


def test_reason_bits_in_words():
    m = fake_pynvml([])
    assert reason_words(m, 0x40 | 0x4) == "hardware thermal slowdown, power cap"
    assert reason_words(m, 0x1 | 0x2) is None  # idle and applications clocks: no slowdown
    assert reason_words(m, 0) is None
    assert reason_words(m, 0x1 | 0x10) == "sync boost"
    assert reason_words(m, 0x800) == "other reason bits 0x800"


def test_older_pynvml_throttle_names(monkeypatch):
    old = types.ModuleType("pynvml")
    old.nvmlClocksThrottleReasonSwPowerCap = 0x4
    old.nvmlClocksThrottleReasonGpuIdle = 0x1
    assert reason_words(old, 0x5) == "power cap"


def test_watch_reads_reasons_and_lowest_busy_clock(two_gpus):
    m, a, b = two_gpus
    m.reads[:] = [0x0, 0x4, 0x1, 0x40]
    m.clocks[:] = [1980, 1755, 1500]  # the idle read (0x1) reads no clock
    watch = NvmlWatch("cuda:0", min_interval_s=0)
    for _ in range(4):
        watch.sample()
    assert watch.reads == 4
    assert watch.result() == {
        "throttle": "hardware thermal slowdown, power cap",
        "clock_mhz": 1500,
        "max_clock_mhz": 1980,
    }
    watch.close()
    watch.close()
    assert m.calls["init"] == m.calls["shutdown"] == 1
    assert watch.result()["clock_mhz"] == 1500  # still readable after close


def test_watch_quiet_reasons_give_no_throttle(two_gpus):
    m, *_ = two_gpus
    m.reads[:] = [0x2, 0x0]
    m.clocks[:] = [1410, 1410]
    with NvmlWatch("cuda:0", min_interval_s=0) as watch:
        watch.sample()
        watch.sample()
    assert watch.result() == {"throttle": None, "clock_mhz": 1410, "max_clock_mhz": 1980}


def test_a_fact_nvml_refuses_costs_only_itself(two_gpus):
    # A VM or MIG slice refuses power and temperature: the whole reading was "partial" then,
    # and the driver and memory size were lost with them.
    m, a, b = two_gpus
    m.clocks[:] = [1755, 2619]
    m.nvmlDeviceGetPowerUsage = lambda h: (_ for _ in ()).throw(NVMLError("Not Supported"))
    m.nvmlDeviceGetTemperature = lambda h, k: (_ for _ in ()).throw(NVMLError("No permission"))
    info = env._nvml(0)
    assert info["nvml"] == "partial (temperature_c: No permission; power_w: Not Supported)"
    assert (info["driver"], info["gpu_memory_gib"], info["sm_clock_mhz"]) == ("570.86", 141.0,
                                                                             1755)  # fmt: skip
    assert "power_w" not in info and "temperature_c" not in info
    assert m.calls["init"] == m.calls["shutdown"] == 1


def test_the_watch_counts_a_clock_read_without_its_reasons(two_gpus):
    m, *_ = two_gpus
    m.reads[:] = [NVMLError("Not Supported")]  # no clock event reasons on this GPU
    m.clocks[:] = [1850]
    watch = NvmlWatch("cuda:0", min_interval_s=0)
    watch.sample()
    assert watch.reads == 1 and watch.result()["clock_mhz"] == 1850


def test_watch_errors_give_none(two_gpus):
    m, *_ = two_gpus
    m.reads[:] = [NVMLError("Not Supported")]
    m.clocks[:] = [NVMLError("GPU is lost")]
    m.nvmlDeviceGetMaxClockInfo = lambda h, kind: (_ for _ in ()).throw(NVMLError("x"))
    watch = NvmlWatch("cuda:0", min_interval_s=0)
    watch.sample()
    assert watch.reads == 0
    assert watch.result() == {"throttle": None, "clock_mhz": None, "max_clock_mhz": None}


def test_watch_without_nvml_or_device(monkeypatch, two_gpus):
    m, *_ = two_gpus
    m.nvmlInit = lambda: (_ for _ in ()).throw(NVMLError("NVML Shared Library Not Found"))
    watch = NvmlWatch("cuda:0", min_interval_s=0)
    watch.sample()
    assert watch.note == "NVML unavailable (NVML Shared Library Not Found)"
    assert watch.result() == {"throttle": None, "clock_mhz": None, "max_clock_mhz": None}
    assert NvmlWatch("cpu").note == "not a CUDA device"


def test_watch_is_rate_limited(two_gpus):
    m, *_ = two_gpus
    m.reads[:] = [0x0, 0x4]
    m.clocks[:] = [1900, 1200]
    watch = NvmlWatch("cuda:0", min_interval_s=60)
    watch.sample()
    watch.sample()  # within the minute: skipped
    assert (watch.reads, watch.result()["clock_mhz"], len(m.reads)) == (1, 1900, 1)


def test_active_watches_are_sampled_until_closed(two_gpus):
    m, *_ = two_gpus
    m.reads[:] = [0x0, 0x0]
    m.clocks[:] = [1800, 1700]
    watch = NvmlWatch("cuda:0", min_interval_s=0)
    sample_active()  # what the CUDA takers call while a block runs
    assert watch.reads == 1
    watch.close()
    sample_active()
    assert watch.reads == 1
    assert watch not in machine_cuda._active
