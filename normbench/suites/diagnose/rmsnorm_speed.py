"""rmsnorm-speed: is RMSNorm about 10% faster than LayerNorm?

Zhang & Sennrich 2019 ("Root Mean Square Layer Normalization") report RMSNorm cutting the running
time of the norm by 7%-64% because it skips the mean. Whether that holds depends on the kernel: the
verdict is per backend (eager PyTorch ops, the composite formula as model code writes it, ...).
The measurement is injected: `measure()` returns {backend: {"rmsnorm": s, "layernorm": s}} (median
seconds per call), optionally with "ratio_low"/"ratio_high", the 95% CI of RMS/LN; by default the
speed suite's timings (`speed_suite_measure`: its backends, its fp64 gate and its timing loop, and
the CI from its raw samples). With a CI a backend is judged by it: "can't tell" where it straddles
the bar (docs/numerics.md section 6).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from normbench.speed_answers import ratio_words, time_ratio
from normbench.suites.diagnose.common import Outcome, ProbeContext, Verdict

FASTER = 0.95  # RMSNorm / LayerNorm time below this on a backend confirms the claim there
Measure = Callable[[], dict[str, dict[str, float]]]

THRESHOLD = (
    f"ratio = RMSNorm time / LayerNorm time (medians) per backend, with its 95% CI where the raw "
    f"samples allow; confirmed if ratio (the whole CI) < {FASTER} on every backend; refuted if on "
    f"none; inconclusive if mixed (implementation-dependent) or a CI straddles {FASTER}"
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


def _ci(t: dict[str, float]) -> tuple[float, float] | None:
    low, high = t.get("ratio_low", math.nan), t.get("ratio_high", math.nan)
    return (low, high) if math.isfinite(low) and math.isfinite(high) else None


def _judged(r: float, ci: tuple[float, float] | None) -> tuple[bool | None, str]:
    """Below the bar (True), not (False) or can't tell (None), and the backend's words."""
    if ci is None:  # medians only (an injected measurement): the point decides
        return r < FASTER, f"RMS/LN {r:.2f} ({'faster' if r < FASTER else 'not faster'})"
    low, high = ci
    below = None  # the CI straddles the bar
    if high < FASTER or low >= FASTER:
        below = high < FASTER
    bar = {True: "below", False: "not below", None: "can't tell against"}[below]
    return below, f"{ratio_words(r, low, high, 'RMSNorm')}: RMS/LN {r:.2f}, {bar} {FASTER}"


def verdict_rmsnorm_speed(times: dict[str, dict[str, float]]) -> tuple[Verdict, str]:
    """Judge from median seconds {backend: {"rmsnorm": s, "layernorm": s}}, and the 95% CI of
    the ratio ("ratio_low", "ratio_high") where given."""
    ratios = {b: r for b, r in speed_ratios(times).items() if math.isfinite(r)}
    if not ratios:
        return Verdict.INCONCLUSIVE, "no backend timed both norms"
    judged = {b: _judged(r, _ci(times[b])) for b, r in ratios.items()}
    text = "; ".join(f"{b}: {words}" for b, (_, words) in judged.items())
    below = [j for j, _ in judged.values()]
    if all(j is True for j in below):
        return Verdict.CONFIRMED, text
    if all(j is False for j in below):
        return Verdict.REFUTED, text
    if True in below and False in below:
        return Verdict.INCONCLUSIVE, f"depends on the implementation: {text}"
    unsure = ", ".join(b for b, (j, _) in judged.items() if j is None)
    return Verdict.INCONCLUSIVE, f"can't tell on {unsure}: {text}"


def speed_suite_measure(
    *,
    quick: bool = False,
    device: str = "cpu",
    progress: Callable[[str, float], None] | None = None,
) -> dict[str, dict[str, float]]:
    """The speed suite's medians (gated against fp64 first) for RMSNorm and LayerNorm, eager and
    composite, fp32 forward, 1 x 2048 x 4096 (quick: 1 x 512 x 4096), in seconds, with the 95%
    CI of RMS/LN from the raw samples."""
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
    timed: dict[tuple[str, str], SpeedResult] = {}
    for r in run.of(SpeedResult):
        if r.time is not None and r.time.value:
            out.setdefault(r.backend, {})[r.variant] = r.time.value / 1e3
            timed[(r.backend, r.variant)] = r
    for backend in out:
        rms, ln = timed.get((backend, "rmsnorm")), timed.get((backend, "layernorm"))
        ci = time_ratio(rms, ln, f"rmsnorm-speed/{backend}") if rms and ln else None
        if ci is not None:
            out[backend].update(ratio_low=ci.low, ratio_high=ci.high)
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
        for bound in ("ratio_low", "ratio_high"):
            if bound in t:
                numbers[f"{bound}/{backend}"] = t[bound]
    numbers["threads"] = float(torch.get_num_threads())
    summary = f"median time RMSNorm / LayerNorm: {reason}"
    return Outcome(verdict, numbers, THRESHOLD, CAVEAT, summary)
