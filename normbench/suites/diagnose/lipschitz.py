"""lipschitz: does a norm layer bound the Lipschitz constant?

LayerNorm's Jacobian is (1 / sqrt(var + eps)) (I - 11^T/N - y y^T/N), so its spectral norm is
1 / sqrt(var + eps): it grows without bound as the row's variance falls, until eps caps it at
1 / sqrt(eps) (316 for eps 1e-5) on a constant row. (Xu et al. 2019, "Understanding and Improving
Layer Normalization", derive the same gradient: the backward pass re-scales by 1 / sigma.)
We compute the exact Jacobian in fp64 on rows of shrinking standard deviation, down to a constant
row, for LayerNorm (rows with mean 1) and RMSNorm (rows with mean 0, down to a zero row).
"""

from __future__ import annotations

import math

import torch

from normbench.suites.diagnose.common import Outcome, ProbeContext, Verdict, fmt
from normbench.suites.diagnose.norms import functional_norm

N = 64
EPS = 1e-5
STDS = (1.0, 1e-1, 1e-2, 1e-3, 1e-4, 0.0)
BOUNDED = 2.0  # gain at most this multiple of its unit-variance value everywhere: "bounded"
UNBOUNDED = 10.0  # gain at least this multiple somewhere: no useful global bound

THRESHOLD = (
    "gain = spectral norm of the norm's Jacobian; confirmed if max gain <= "
    f"{BOUNDED} x gain at std 1 for every input tested; refuted if max gain >= {UNBOUNDED} x "
    "gain at std 1; inconclusive otherwise"
)
CAVEAT = (
    "Single rows of width 64 with eps 1e-5 and unit weight; a learned weight scales the gain, "
    "and in a trained model rows with tiny variance are rare but do occur (e.g. after a padding "
    "embedding or a dead layer). The bound 1/sqrt(eps) is finite, just large."
)


def verdict_lipschitz(gains: dict[str, list[float]]) -> tuple[Verdict, str]:
    """Judge from Jacobian spectral norms per norm, each list starting at unit input std."""
    growth = {k: max(g) / g[0] for k, g in gains.items() if g and g[0] > 0}
    if not growth or not all(math.isfinite(x) for x in growth.values()):
        return Verdict.INCONCLUSIVE, "no finite gains to compare"
    text = ", ".join(
        f"{k} gain grows {x:.0f}x from std 1 to the flattest row" for k, x in growth.items()
    )
    if all(x <= BOUNDED for x in growth.values()):
        return Verdict.CONFIRMED, text
    if any(x >= UNBOUNDED for x in growth.values()):
        return Verdict.REFUTED, text
    return Verdict.INCONCLUSIVE, text


def jacobian_gain(norm: str, x: torch.Tensor) -> float:
    """Spectral norm of d norm(x) / dx for one fp64 row (exact, via autograd)."""

    jac = torch.autograd.functional.jacobian(lambda row: functional_norm(row, norm, EPS), x)
    return float(torch.linalg.matrix_norm(jac, ord=2))


def run(ctx: ProbeContext) -> Outcome:
    gen = torch.Generator().manual_seed(ctx.seed)
    z = torch.randn(N, generator=gen, dtype=torch.float64)
    z = (z - z.mean()) / z.std(correction=0)  # exactly zero mean, unit std
    gains: dict[str, list[float]] = {"layernorm": [], "rmsnorm": []}
    for i, s in enumerate(STDS):
        # LayerNorm removes the mean, so give its rows one; RMSNorm's degenerate row is zero.
        gains["layernorm"].append(jacobian_gain("layernorm", (1.0 + s * z).to(ctx.device)))
        gains["rmsnorm"].append(jacobian_gain("rmsnorm", (s * z).to(ctx.device)))
        ctx.report(f"lipschitz std {s:g}", (i + 1) / len(STDS))
    # LN's variance is s^2 and RMS's mean square is s^2 too (z has zero mean, unit std).
    theory = [1 / math.sqrt(s * s + EPS) for s in STDS]
    verdict, reason = verdict_lipschitz(gains)
    numbers: dict[str, float | list | str] = {
        "input_std": list(STDS),
        "eps": EPS,
        "gain/layernorm": gains["layernorm"],
        "gain/rmsnorm": gains["rmsnorm"],
        "theory_1_over_sqrt_var_eps": theory,
        "max_rel_dev_from_theory": max(
            abs(g - t) / t for g, t in zip(gains["layernorm"], theory, strict=True)
        ),
        "constant_row_gain/layernorm": gains["layernorm"][-1],
    }
    cap = 1 / math.sqrt(EPS)
    summary = (
        f"LayerNorm Jacobian gain {fmt(gains['layernorm'][0])} at std 1 -> "
        f"{fmt(gains['layernorm'][-1])} at a constant row (1/sqrt(eps) = {fmt(cap)}); "
        f"RMSNorm {fmt(gains['rmsnorm'][0])} -> {fmt(gains['rmsnorm'][-1])} at a zero row; {reason}"
    )
    return Outcome(verdict, numbers, THRESHOLD, CAVEAT, summary)
