"""The rules that keep a timing from over-claiming (docs/numerics.md section 6): the machine's
state, the reliability verdict, the cold cache's rotation and the SOL reference."""

from __future__ import annotations

import statistics

import pytest

from normbench.cache_state import MAX_ROTATIONS, SPAN, _sysfs_llc, partly_cold, rotation_count
from normbench.machine import (
    MIN_TICKS,
    OTHERS_CPU_LIMIT,
    TICK_SLACK,
    CpuTimes,
    MachineState,
    cpu_state,
    read_cpu_times,
)
from normbench.reliability import CI_LIMIT, DRIFT_LIMIT, SPREAD_LIMIT, assess, drift
from normbench.sol import above_sol_note
from normbench.stats import summarize

# --- the machine's state ---------------------------------------------------------------------


def _proc(tmp_path, busy, steal, own, mhz=(2600.0, 2600.0), pid_own=None):
    """A fake /proc: the aggregate cpu line, this process's stat, cpuinfo, a worker's stat."""
    user, system = busy - 10, 10
    (tmp_path / "stat").write_text(
        f"cpu  {user} 0 {system} 5000 3 0 0 {steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"
    )
    (tmp_path / "self").mkdir(exist_ok=True)
    # The command holds a space and a parenthesis: fields are counted from the last ')'.
    fields = ["S"] + ["0"] * 10 + [str(own - 5), "5"] + ["0"] * 30
    (tmp_path / "self" / "stat").write_text(f"123 (python (x) y) {' '.join(fields)}\n")
    if pid_own is not None:
        (tmp_path / "77").mkdir(exist_ok=True)
        fields = ["S"] + ["0"] * 10 + [str(pid_own), "0"] + ["0"] * 30
        (tmp_path / "77" / "stat").write_text(f"77 (worker) {' '.join(fields)}\n")
    (tmp_path / "cpuinfo").write_text("".join(f"cpu MHz\t\t: {m}\n" for m in mhz))


def test_cpu_counters_are_read_from_proc(tmp_path):
    _proc(tmp_path, busy=1000, steal=40, own=300, mhz=(2600.0, 2400.0), pid_own=50)
    t = read_cpu_times((77,), proc=tmp_path)
    assert (t.busy, t.steal, t.own, t.mhz) == (1000, 40, 300 + 50, 2400.0)
    assert read_cpu_times(proc=tmp_path / "missing") is None


def test_others_share_is_all_busy_time_minus_our_own():
    # 2 CPUs, 1 s at 100 ticks/s = 200 ticks of capacity. All CPUs busy for 150 ticks, 50 of
    # them ours: others used 100 ticks, less the 2 forgiven for rounding = 49%; 10 stolen = 5%.
    a = CpuTimes(wall=10.0, busy=1000, steal=0, own=500, mhz=2600.0)
    b = CpuTimes(wall=11.0, busy=1150, steal=10, own=550, mhz=2000.0)
    s = cpu_state(a, b, cpus=2, hz=100)
    assert s.ticks == pytest.approx(200)
    assert s.others_cpu == pytest.approx((100 - TICK_SLACK) / 200)
    assert s.steal == pytest.approx(0.05)
    assert (s.clock_mhz, s.max_clock_mhz) == (2000.0, 2600.0)
    reasons = s.busy_reasons()
    assert any("other processes used 49% of the CPUs" in r for r in reasons)
    assert any("fell from 2600 to 2000 MHz" in r for r in reasons)
    assert not any("stole" in r for r in reasons)  # 5% is the limit, not above it


def test_a_quiet_interval_gives_no_reason():
    a = CpuTimes(wall=0.0, busy=0, steal=0, own=0, mhz=2600.0)
    quiet = round(200 * OTHERS_CPU_LIMIT) + TICK_SLACK  # at the limit once the slack is off
    b = CpuTimes(wall=1.0, busy=100 + quiet, steal=0, own=100, mhz=2600.0)
    assert cpu_state(a, b, cpus=2, hz=100).busy_reasons() == ()
    busy = CpuTimes(wall=1.0, busy=100 + quiet + 1, steal=0, own=100, mhz=2600.0)
    assert cpu_state(a, busy, cpus=2, hz=100).busy_reasons() != ()


def test_a_short_interval_is_weighed_over_min_ticks():
    """40 ms on 2 CPUs is 8 ticks: 4 ticks of others (50%) or 2 of steal could be rounding; no
    claim is made. 120 ms is 24 ticks: 10 ticks of others (42%) would be busy even over
    MIN_TICKS (20%), and are (an A/A case timed 730x slower once went through unjudged)."""
    a = CpuTimes(wall=0.0, busy=0, steal=0, own=0, mhz=None)
    b = CpuTimes(wall=0.04, busy=11, steal=2, own=5, mhz=None)
    s = cpu_state(a, b, cpus=2, hz=100)
    assert s.ticks == pytest.approx(8) and s.ticks < MIN_TICKS
    assert s.others_cpu > OTHERS_CPU_LIMIT and s.busy_reasons() == ()
    b = CpuTimes(wall=0.12, busy=12 + 10 + TICK_SLACK, steal=0, own=12, mhz=None)
    s = cpu_state(a, b, cpus=2, hz=100)
    assert s.ticks == pytest.approx(24) and s.others_cpu == pytest.approx(10 / 24)
    assert s.busy_reasons() == ("other processes used 42% of the CPUs while it was timed",)


def test_throttle_is_a_reason_and_fields_are_percent():
    s = MachineState(wall_s=1.0, others_cpu=0.123, steal=0.0, load_avg=1.234,
                     throttle="hardware thermal slowdown")  # fmt: skip
    assert s.busy_reasons() == ("the GPU was throttled (hardware thermal slowdown)",)
    f = s.fields()
    assert f["others_cpu_pct"] == 12.3 and f["load_avg"] == 1.23 and f["steal_pct"] == 0.0


# --- reliability -------------------------------------------------------------------------------


def _timing(samples, stopped="converged", machine=None):
    return assess(samples, summarize(samples), stopped, machine)


def test_tight_samples_are_reliable():
    samples = [1.0 + 0.001 * (i % 7) for i in range(200)]
    warnings, reasons = _timing(samples)
    assert warnings == () and reasons == ()


def test_a_busy_machine_makes_a_tight_timing_unreliable():
    samples = [1.0 + 0.001 * (i % 7) for i in range(200)]
    busy = MachineState(wall_s=1.0, others_cpu=0.94)
    _, reasons = _timing(samples, machine=busy)
    assert reasons == ("other processes used 94% of the CPUs while it was timed",)


def test_drift_between_halves():
    samples = [1.0] * 50 + [1.5] * 50
    assert drift(samples) == pytest.approx(0.5)
    assert drift(samples[:9]) is None  # too few for halves
    _, reasons = _timing(samples)
    assert any("ran 50% slower than the first" in r for r in reasons)
    just_under = [1.0] * 50 + [1.0 + DRIFT_LIMIT * 0.9] * 50
    assert not any("second half" in r for r in _timing(just_under)[1])


def test_wide_spread_and_wide_ci():
    # Two populations a factor 3 apart: p20-p80 spans them.
    samples = [1.0, 3.0] * 50
    s = summarize(samples)
    assert s.spread > SPREAD_LIMIT
    _, reasons = _timing(samples)
    assert any("not one distribution" in r for r in reasons)
    few = [1.0, 1.6, 0.7, 1.3, 0.8]  # five scattered samples: the median's CI is wide
    assert summarize(few).rel_ci > CI_LIMIT
    assert any("CI of the median" in r for r in _timing(few, "budget")[1])


def test_moderate_spread_is_a_warning_only():
    samples = [1.0 + 0.2 * (i % 5) / 4 for i in range(400)]  # p20-p80 about 15%
    s = summarize(samples)
    assert 0.10 < s.spread < SPREAD_LIMIT and s.rel_ci < 0.05
    warnings, reasons = _timing(samples)
    assert reasons == () and warnings[0].startswith("unstable: p20-p80 spread is")


# --- cold cache: rotation ------------------------------------------------------------------------


def test_rotation_spans_twice_the_cache(tmp_path):
    llc = 480 << 20
    k = rotation_count(8 << 20, llc)
    assert k * (8 << 20) >= SPAN * llc > (k - 1) * (8 << 20)
    assert rotation_count(2 * llc, llc) == 1  # already larger than the caches
    # Memory-capped: at most a quarter of what is available.
    assert rotation_count(8 << 20, llc, available=64 << 20) == 2
    for i, (level, size) in enumerate([(1, "48K"), (2, "2048K"), (3, "491520K")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "size").write_text(size + "\n")
        (d / "level").write_text(f"{level}\n")
    assert _sysfs_llc(tmp_path) == 491520 << 10


def test_tiny_inputs_are_capped_and_said_to_be_partly_cold():
    llc = 480 << 20
    k = rotation_count(64 << 10, llc)  # 64 KB: 15360 copies would be needed
    assert k == MAX_ROTATIONS
    note = partly_cold(64 << 10, k, llc)
    assert note == (f"partly cold: {MAX_ROTATIONS} copies of its inputs span 64 MiB, under "
                    f"{SPAN} x the 480 MiB last-level cache")  # fmt: skip
    assert partly_cold(8 << 20, rotation_count(8 << 20, llc), llc) is None


def test_cold_runner_rotates_through_copies(monkeypatch):
    """A cold runner hands each call a different copy of the inputs (equal values, other
    storage), and comes back to the first after k calls; a hot one reuses the same tensors."""
    import normbench.cache_state as cs
    from normbench.cases import Case
    from normbench.gate import prepare
    from normbench.suites.speed import timed_runner
    from normbench.variants import get_variant
    from normbench.variants.base import Shape

    case = Case("rmsnorm", "eager", "fp32", Shape(1, 64, 256), "fwd", "cpu")
    p = prepare(get_variant("rmsnorm"), case, 0)
    nbytes = sum(t.numel() * t.element_size() for t in p.tensors())
    monkeypatch.setattr(cs, "last_level_cache", lambda device="cpu": (2 * nbytes, "test"))
    seen = []

    def fn(x, weight, eps):
        seen.append(x.data_ptr())
        return x * weight

    run, k, note = timed_runner(fn, p, "fwd", hot=False, inplace=False)
    assert k == SPAN * 2 and note is None  # 2 caches of 2 x nbytes over nbytes a copy
    for _ in range(2 * k):
        run()
    assert len(set(seen[:k])) == k and seen[k:] == seen[:k]
    seen.clear()
    run, k, note = timed_runner(fn, p, "fwd", hot=True, inplace=False)
    run(), run()
    assert k == 1 and note is None and seen == [p.inputs["x"].data_ptr()] * 2


# --- the SOL reference ---------------------------------------------------------------------------


def test_above_sol_is_flagged_with_its_reason():
    assert above_sol_note(99.0, 95.0, 103.0, 1 << 20, "cold") is None
    noisy = above_sol_note(104.0, 97.0, 110.0, 16 << 20, "cold")
    assert "within the noise" in noisy and "97-110%" in noisy and "16 MiB" in noisy
    clear = above_sol_note(180.0, 170.0, 190.0, 16 << 20, "hot")
    assert clear is not None and "within the noise" not in clear and "hot" in clear


def test_sol_reference_times_a_copy_of_half_the_ideal_bytes(monkeypatch):
    """The reference copies ideal/2 bytes (float32), once per byte count and cache state."""
    import normbench.sol as sol
    from normbench.timing import TimingConfig

    calls = []

    def fake_measure(run, device, config):
        out = run()
        calls.append((out.numel() * out.element_size(), config.hot))
        return "timing"

    monkeypatch.setattr(sol, "measure", fake_measure)
    ref = sol.SolReference("cpu", llc_bytes=1 << 20)
    cold, hot = TimingConfig(hot=False), TimingConfig(hot=True)
    assert ref.timing(8 << 20, cold) == "timing"
    ref.timing(8 << 20, cold), ref.timing(8 << 20, hot)
    assert calls == [(4 << 20, False), (4 << 20, True)]


def test_speed_rows_record_cache_state_sol_and_machine(tmp_path):
    """A real (tiny) speed run: every timed row says its cache state and rotation, has its SOL
    pair with pct_sol = 100 x sol_time / time, and the machine's counters."""
    from normbench.config import Selection, SpeedConfig
    from normbench.results.speed import SpeedResult
    from normbench.suites.speed import run_speed

    sel = Selection(variants=("rmsnorm",), backends=("eager",), dtypes=("fp32",), dims=(256,),
                    batches=(1,), seqs=(64,), modes=("fwd",), device="cpu")  # fmt: skip
    import torch

    import normbench.env

    before = torch.get_num_threads()
    measured_on = []
    real = normbench.env.copy_bandwidth

    def spy(*args, **kwargs):
        measured_on.append(torch.get_num_threads())
        return real(*args, **kwargs)

    torch.set_num_threads(2)
    try:
        normbench.env.copy_bandwidth = spy
        run = run_speed(SpeedConfig(sel, threads=1, time_budget=0.05, quick=True, out=tmp_path))
        # Timed on one thread, the copy bandwidth (cached per thread count) measured on it too;
        # the caller's two again after (a test session stayed on one).
        assert run.env["threads"] == 1 and torch.get_num_threads() == 2
        assert measured_on == [1]
    finally:
        normbench.env.copy_bandwidth = real
        torch.set_num_threads(before)
    (r,) = run.of(SpeedResult)
    assert r.cache == "cold" and r.rotations and r.rotations > 1
    t, ref, pct = r.get("time"), r.get("sol_time"), r.get("pct_sol")
    assert pct.value == pytest.approx(100 * ref.value / t.value)
    assert pct.ci_low <= pct.value <= pct.ci_high
    assert r.others_cpu_pct is not None and r.load_avg is not None
    assert r.get("sol_time").note.startswith(f"a copy of {r.ideal_bytes // 2} bytes")
    assert statistics.median(t.samples) == pytest.approx(t.value)


def test_a_run_warns_once_for_its_unreliable_cases():
    from normbench.cases import Case
    from normbench.results import Measurement
    from normbench.results.speed import SpeedResult
    from normbench.suites.speed import unreliable_summary
    from normbench.variants.base import Shape

    def case(backend, **kw):
        c = Case("rmsnorm", backend, "fp32", Shape(1, 8, 64), "fwd")
        return SpeedResult.of_case(c, [Measurement("time", 1.0, "ms")], **kw)

    quiet = [case("eager", others_cpu_pct=0.5), case("composite", others_cpu_pct=1.0)]
    assert unreliable_summary(quiet) is None
    busy = case("compile", others_cpu_pct=61.0,
                unreliable="other processes used 61% of the CPUs while it was timed")  # fmt: skip
    hot = case("triton", throttle="hardware thermal slowdown", unreliable="the GPU was throttled")
    text = unreliable_summary([*quiet, busy, hot])
    assert text == (
        "2 of 4 timed cases are unreliable (other processes used up to 61% of the CPUs; the GPU "
        "was throttled (hardware thermal slowdown)): their notes say why; compare will not judge "
        "them."
    )


def test_the_watch_counts_workers_as_this_run(tmp_path):
    """ab's worker processes are this run: their CPU time is not others'."""
    _proc(tmp_path, busy=1000, steal=0, own=300, pid_own=0)
    a = read_cpu_times((77,), proc=tmp_path)
    _proc(tmp_path, busy=1150, steal=0, own=350, pid_own=100)  # the worker used 100 ticks
    b = read_cpu_times((77,), proc=tmp_path)
    with_worker = cpu_state(a, b, cpus=2, hz=100)
    assert with_worker.others_cpu == 0.0  # 150 busy = 50 ours + 100 the worker's
    a0, b0 = read_cpu_times(proc=tmp_path), read_cpu_times(proc=tmp_path)
    assert a0.own == b0.own == 350 and b.own == 450


def test_pct_cell_flags_above_100():
    from normbench.report.speed_view import pct_cell
    from normbench.results import Measurement

    assert pct_cell(Measurement("pct_sol", 104.26, "%")) == "104.3!"
    assert pct_cell(Measurement("pct_sol", 99.9, "%")) == "99.9"
    assert pct_cell(Measurement("pct_copy_bw", 183.0, "%")) == "183.0"  # version 1: as it was
    assert pct_cell(None) == "-"


def test_old_workers_get_only_the_fields_they_know():
    from normbench.suites.ab_timing import WIRE_FIELDS, timing_wire
    from normbench.timing import TimingConfig

    wire = timing_wire(TimingConfig(budget_s=0.3, hot=True))
    assert set(wire) == set(WIRE_FIELDS) and wire["budget_s"] == 0.3 and wire["hot"] is True
    assert timing_wire(TimingConfig(cuda_graph="off"))["cuda_graph"] == "off"  # not the default
