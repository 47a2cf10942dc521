"""rmsnorm-speed: is RMSNorm about 10% faster than LayerNorm?

Zhang & Sennrich 2019 ("Root Mean Square Layer Normalization") report RMSNorm cutting the running
time of the norm by 7%-64% because it skips the mean. Whether that holds depends on the kernel: the
verdict is per backend (eager PyTorch ops, the composite formula as model code writes it, ...).
The measurement is injected: `measure()` returns {backend: {"rmsnorm": s, "layernorm": s}} (median
seconds per call); by default the speed suite's timings (`speed_suite_measure`: its backends, its
fp64 gate and its timing loop).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from normbench.suites.diagnose.common import Outcome, ProbeContext, Verdict

FASTER = 0.95  # RMSNorm / LayerNorm time below this on a backend confirms the claim there
Measure = Callable[[], dict[str, dict[str, float]]]

THRESHOLD = (
    f"ratio = RMSNorm time / LayerNorm time (medians) per backend; confirmed if ratio < {FASTER} "
    f"on every backend; refuted if on none; inconclusive (implementation-dependent) if mixed"
)
CAVEAT = (
    "Timed on this device and thread count only; a CPU is compute-bound where a GPU norm is "
    "memory-bound, so the ratio on a GPU can differ. Other processes on the machine add noise."
)


def speed_ratios(times: dict[str, dict[str, float]]) -> dict[str, float]:
    """RMSNorm / LayerNorm median time per backend (NaN where either is missing or not positive)."""
    out = {}
    for backend, t in times.items():
        rms, ln = t.get("rmsnorm", math.nan), t.get("layernorm", math.nan)
        out[backend] = rms / ln if ln > 0 and rms > 0 else math.nan
    return out


def verdict_rmsnorm_speed(times: dict[str, dict[str, float]]) -> tuple[Verdict, str]:
    """Judge from median seconds {backend: {"rmsnorm": s, "layernorm": s}}."""
    ratios = {b: r for b, r in speed_ratios(times).items() if math.isfinite(r)}
    if not ratios:
        return Verdict.INCONCLUSIVE, "no backend timed both norms"
    text = ", ".join(
        f"{b} RMS/LN {r:.2f} ({'faster' if r < FASTER else 'not faster'})"
        for b, r in ratios.items()
    )
    faster = [b for b, r in ratios.items() if r < FASTER]
    if len(faster) == len(ratios):
        return Verdict.CONFIRMED, text
    if not faster:
        return Verdict.REFUTED, text
    return Verdict.INCONCLUSIVE, f"depends on the implementation: {text}"


def speed_suite_measure(
    *,
    quick: bool = False,
    device: str = "cpu",
    progress: Callable[[str, float], None] | None = None,
) -> dict[str, dict[str, float]]:
    """The speed suite's medians (gated against fp64 first) for RMSNorm and LayerNorm, eager and
    composite, fp32 forward, 1 x 2048 x 4096 (quick: 1 x 512 x 4096), in seconds."""
    from normbench.config import Selection, SpeedConfig
    from normbench.results.speed import SpeedResult
    from normbench.suites.speed import run_speed

    rows = 512 if quick else 2048
    sel = Selection(
        variants=("rmsnorm", "layernorm"), backends=("eager", "composite"), dtypes=("fp32",),
        dims=(4096,), batches=(1,), seqs=(rows,), modes=("fwd",), device=device,
    )  # fmt: skip
    config = SpeedConfig(sel, threads=torch.get_num_threads(), time_budget=0.3 if quick else 1.0)
    report = (
        (lambda done, total, label: progress(label, done / max(total, 1))) if progress else None
    )
    run = run_speed(config, report)
    out: dict[str, dict[str, float]] = {}
    for r in run.of(SpeedResult):
        if r.time is not None and r.time.value:
            out.setdefault(r.backend, {})[r.variant] = r.time.value / 1e3
    return out


def run(ctx: ProbeContext, measure: Measure | None = None) -> Outcome:
    if measure is None:

        def measure() -> dict[str, dict[str, float]]:
            return speed_suite_measure(quick=ctx.quick, device=ctx.device, progress=ctx.report)

    times = measure()
    ctx.report("rmsnorm-speed timed", 1.0)
    verdict, reason = verdict_rmsnorm_speed(times)
    ratios = speed_ratios(times)
    numbers: dict[str, float | list | str] = {}
    for backend, t in times.items():
        numbers[f"rmsnorm_s/{backend}"] = t.get("rmsnorm", math.nan)
        numbers[f"layernorm_s/{backend}"] = t.get("layernorm", math.nan)
        numbers[f"ratio/{backend}"] = ratios[backend]
    numbers["threads"] = float(torch.get_num_threads())
    summary = f"median time RMSNorm / LayerNorm: {reason}"
    return Outcome(verdict, numbers, THRESHOLD, CAVEAT, summary)
