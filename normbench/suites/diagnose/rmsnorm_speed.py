"""rmsnorm-speed: is RMSNorm about 10% faster than LayerNorm?

Zhang & Sennrich 2019 ("Root Mean Square Layer Normalization") report RMSNorm cutting the running
time of the norm by 7%-64% because it skips the mean. Whether that holds depends on the kernel: the
verdict is per backend (eager PyTorch ops, the composite formula as model code writes it, ...).
The measurement is injected: `measure()` returns {backend: {"rmsnorm": s, "layernorm": s}} (median
seconds per call), so the speed suite can supply its own; `default_measure` is a self-contained
fallback (perf_counter_ns, median over interleaved samples, fp32 input).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from normbench.suites.diagnose.common import Finding, ProbeContext, Progress, Verdict
from normbench.timing import no_gc

FASTER = 0.95  # RMSNorm / LayerNorm time below this on a backend confirms the claim there
EPS = 1e-5
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
        return "inconclusive", "no backend timed both norms"
    text = ", ".join(
        f"{b} RMS/LN {r:.2f} ({'faster' if r < FASTER else 'not faster'})"
        for b, r in ratios.items()
    )
    faster = [b for b, r in ratios.items() if r < FASTER]
    if len(faster) == len(ratios):
        return "confirmed", text
    if not faster:
        return "refuted", text
    return "inconclusive", f"depends on the implementation: {text}"


def _eager(cols: int) -> dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], object]]:
    return {
        "rmsnorm": lambda x, w, b: F.rms_norm(x, (cols,), w, EPS),
        "layernorm": lambda x, w, b: F.layer_norm(x, (cols,), w, b, EPS),
    }


def _composite_rms(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Llama-style: upcast, mean of squares, rsqrt, cast back, then the weight.
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + EPS)
    return w * h.to(x.dtype)


def _composite_ln(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # The explicit two-pass formula (mean first, then centred variance; docs/numerics.md section 1).
    h = x.float()
    mu = h.mean(-1, keepdim=True)
    c = h - mu
    var = c.pow(2).mean(-1, keepdim=True)
    return (c * torch.rsqrt(var + EPS)).to(x.dtype) * w + b


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def default_measure(
    *, quick: bool = False, device: str = "cpu", progress: Progress | None = None
) -> dict[str, dict[str, float]]:
    """Median seconds per call of RMSNorm and LayerNorm, eager and composite, on fp32 input.

    2048 x 4096 (quick: 512 x 4096). Samples alternate between the two norms so drift from other
    processes hits both alike; each sample loops until it lasts at least 1 ms (docs/numerics.md 6).
    """
    rows, cols = (512, 4096) if quick else (2048, 4096)
    n_samples = 7 if quick else 21
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, cols, generator=gen).to(dev)
    w, b = torch.ones(cols, device=dev), torch.zeros(cols, device=dev)
    backends = {
        "eager": _eager(cols),
        "composite": {"rmsnorm": _composite_rms, "layernorm": _composite_ln},
    }
    out: dict[str, dict[str, float]] = {}
    for i, (backend, fns) in enumerate(backends.items()):
        loops = {}
        for name, fn in fns.items():  # warm up and size the inner loop to >= 1 ms per sample
            fn(x, w, b)
            _sync(dev)
            t0 = time.perf_counter_ns()
            fn(x, w, b)
            _sync(dev)
            loops[name] = max(1, math.ceil(1e6 / max(1, time.perf_counter_ns() - t0)))
        samples: dict[str, list[float]] = {name: [] for name in fns}
        with no_gc():
            for _ in range(n_samples):
                for name, fn in fns.items():
                    _sync(dev)
                    t0 = time.perf_counter_ns()
                    for _ in range(loops[name]):
                        fn(x, w, b)
                    _sync(dev)
                    samples[name].append((time.perf_counter_ns() - t0) / 1e9 / loops[name])
        out[backend] = {name: statistics.median(s) for name, s in samples.items()}
        if progress is not None:
            progress(f"rmsnorm-speed {backend}", (i + 1) / len(backends))
    return out


def speed_suite_measure(
    *,
    quick: bool = False,
    device: str = "cpu",
    progress: Callable[[str, float], None] | None = None,
) -> dict[str, dict[str, float]]:
    """The speed suite's medians (gated against fp64 first) for RMSNorm and LayerNorm, eager and
    composite, fp32 forward, 1 x 2048 x 4096 (quick: 1 x 512 x 4096), in seconds."""
    from normbench.config import Selection, SpeedConfig
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
    for r in run.rows:
        if r.metric == "time" and r.status == "ok" and r.value:
            out.setdefault(r.backend, {})[r.variant] = r.value / 1e3
    return out


def run(ctx: ProbeContext, measure: Measure | None = None) -> Finding:
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
    return Finding(verdict, numbers, THRESHOLD, CAVEAT, summary)
