"""overflow: does `(x * x).float()` protect an fp16 RMSNorm from overflow?

It does not: the square is taken in fp16 before the cast, so any element >= 256 squares past
fp16's 65504 to inf, the mean is inf, rsqrt gives 0 and the whole row comes out as silent zeros
(pytorch issue #133085; docs/numerics.md trap 1). Upcasting first (`x.float()` then square) is safe.
We sweep rows whose largest element is exactly 2^k, k = 0..12, and judge both implementations
against an fp64 reference by the stability suite's own rule (normbench.verdicts.check_tensor,
without the fp32 formula's slack, since the control is that formula; a point is correct where
it is PASS, as for the stability sweep's safe range). The sweep is injected (`measure()`) for
tests; `default_measure` measures it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from normbench.suites.diagnose.common import Outcome, ProbeContext, Verdict, fmt

EPS = 1e-6
SCALES = tuple(float(2**k) for k in range(13))
ROWS, COLS = 64, 1024
SQUARE_THEN_CAST, UPCAST_FIRST = "square-then-cast", "upcast-first"
Sweep = dict[str, dict[float, dict[str, float]]]  # impl -> scale -> {max_abs_err, zero_rows, ok}
Measure = Callable[[], Sweep]

THRESHOLD = (
    "correct = PASS by the stability suite's rule against fp64 (docs/numerics.md section 2, "
    "fp16, without the fp32 formula's slack); confirmed if the "
    "square-then-cast version stays correct wherever the upcast-first one does, past 256; refuted "
    "if it fails at a scale where upcast-first is correct; inconclusive if upcast-first itself "
    "fails at or below 256"
)
CAVEAT = (
    "fp16 only (bf16 has fp32's range and does not overflow here); the failure needs one element "
    ">= 256 in a row, which massive activations in real LLMs reach routinely."
)


def rms_square_then_cast(x: torch.Tensor, w: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """The seed's pattern: square in the input dtype, then upcast (wrong for fp16 |x| >= 256)."""
    variance = (x * x).float().mean(-1, keepdim=True)
    return (x * torch.rsqrt(variance + eps)).to(x.dtype) * w


def rms_upcast_first(x: torch.Tensor, w: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Correct: upcast, then square and reduce in fp32; cast once at the end."""
    h = x.float()
    return (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


IMPLS = {SQUARE_THEN_CAST: rms_square_then_cast, UPCAST_FIRST: rms_upcast_first}


def rms_reference(x: torch.Tensor, w: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    h = x.double()
    return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps) * w.double()


def rows_with_max(scale: float, seed: int, device: str) -> torch.Tensor:
    """fp16 rows of N(0, 1) shape whose largest |element| is exactly `scale` (a power of two)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(ROWS, COLS, generator=gen, dtype=torch.float64)
    z = z / z.abs().amax(-1, keepdim=True) * scale
    return z.to(torch.float16).to(device)


def check(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Max error, number of silent-zero rows (all zero where the reference is not), and whether
    the stability suite's rule passes it (PASS), in fp16. No fp32 formula to lean on: the
    control (upcast-first) is that formula, and judged against itself it could not fail."""
    from normbench.verdicts import PASS, check_tensor

    c = check_tensor("y", out, ref, None, "fp16")
    err = (out.double() - ref).abs()
    return {"max_abs_err": float(err.max()), "zero_rows": float(c.error.silent_zero_rows),
            "ok": float(c.verdict == PASS)}  # fmt: skip


def default_measure(*, seed: int = 0, device: str = "cpu") -> Sweep:
    w = torch.ones(COLS, dtype=torch.float16, device=device)
    sweep: Sweep = {name: {} for name in IMPLS}
    for scale in SCALES:
        x = rows_with_max(scale, seed, device)
        ref = rms_reference(x, w)
        for name, impl in IMPLS.items():
            sweep[name][scale] = check(impl(x, w), ref)
    return sweep


def max_safe_scale(results: dict[float, dict[str, float]]) -> float:
    """Largest scale with every scale up to it correct; 0 if the smallest already fails."""
    safe = 0.0
    for scale in sorted(results):
        if not results[scale]["ok"]:
            break
        safe = scale
    return safe


def verdict_overflow(max_safe: dict[str, float]) -> tuple[Verdict, str]:
    """Judge from the largest correct scale of each implementation."""
    if SQUARE_THEN_CAST not in max_safe or UPCAST_FIRST not in max_safe:
        return Verdict.INCONCLUSIVE, f"needs both {SQUARE_THEN_CAST} and {UPCAST_FIRST} sweeps"
    sq, up = max_safe[SQUARE_THEN_CAST], max_safe[UPCAST_FIRST]
    text = f"{SQUARE_THEN_CAST} correct up to {sq:g}, {UPCAST_FIRST} up to {up:g}"
    if up <= 256:
        return Verdict.INCONCLUSIVE, text + " (the reference implementation fails too early)"
    if sq >= up:
        return Verdict.CONFIRMED, text
    return Verdict.REFUTED, text


def run(ctx: ProbeContext, measure: Measure | None = None) -> Outcome:
    if measure is None:

        def measure() -> Sweep:
            return default_measure(seed=ctx.seed, device=ctx.device)

    sweep = measure()
    ctx.report("overflow sweep", 1.0)
    safe = {name: max_safe_scale(res) for name, res in sweep.items()}
    verdict, reason = verdict_overflow(safe)
    numbers: dict[str, float | list | str] = {}
    for name, res in sweep.items():
        scales = sorted(res)
        numbers["scales"] = scales
        numbers[f"max_safe_scale/{name}"] = safe[name]
        first_bad = next((s for s in scales if not res[s]["ok"]), math.nan)
        numbers[f"first_failure_scale/{name}"] = first_bad
        numbers[f"max_abs_err/{name}"] = [res[s]["max_abs_err"] for s in scales]
        numbers[f"zero_rows/{name}"] = [res[s]["zero_rows"] for s in scales]
    sq = sweep.get(SQUARE_THEN_CAST, {})
    bad = numbers.get(f"first_failure_scale/{SQUARE_THEN_CAST}", math.nan)
    zeros = sq[bad]["zero_rows"] if bad in sq else 0.0
    summary = (
        f"{reason}; at {fmt(bad)} square-then-cast gives {int(zeros)} of {ROWS} rows silently zero"
    )
    return Outcome(verdict, numbers, THRESHOLD, CAVEAT, summary)
