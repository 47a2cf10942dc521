"""precision: does Post-Norm + fp16 give NaN, and does Pre-Norm or RMSNorm fix it?

Lore from mixed-precision training (Micikevicius et al. 2018, "Mixed Precision Training", for loss
scaling; Liu et al. 2020 and Wang et al. 2022 for Post-LN's instability) says Post-LN models blow up
in fp16. A failure is numeric only if fp16 fails where fp32, with the same seed, lr and batches,
does not: divergence in every dtype is an optimization failure, which a dtype cannot fix. We train
the same model in fp32, bf16 autocast and fp16 autocast + GradScaler and count non-finite losses,
scaler skips, the peak residual-stream magnitude and whether the run learned at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from normbench.suites.diagnose.common import Outcome, ProbeContext, Verdict, pick
from normbench.suites.diagnose.model import build_model
from normbench.suites.diagnose.training import DTYPES, train

DEFAULT_VARIANTS = ("post-layernorm", "pre-layernorm", "post-rmsnorm")
LEARNED = (
    0.5  # a run fails if it ends less than this below the start loss (ln vocab), or non-finite
)

THRESHOLD = (
    f"a run fails if its final loss is non-finite or above ln(vocab) - {LEARNED}; numeric failure "
    "= fails in fp16 but not in fp32; confirmed if Post-LN has a numeric failure and every other "
    "variant passes in fp16; refuted if Post-LN fails in every dtype (optimization failure) or "
    "passes in fp16; inconclusive otherwise"
)
CAVEAT = (
    "CPU autocast covers different ops than CUDA autocast (and CPU fp16 matmuls are slow, so the "
    "runs are short and shallow): confirm fp16 verdicts on a GPU with --device cuda. One seed, "
    "one lr."
)


@dataclass(frozen=True)
class Settings:
    lr: float
    steps: int
    depth: int
    dtypes: tuple[str, ...]
    variants: tuple[str, ...]


FULL = Settings(lr=1e-2, steps=100, depth=4, dtypes=DTYPES, variants=DEFAULT_VARIANTS)
# CPU fp16/bf16 matmuls run ~10x slower than fp32: quick keeps only what the verdict needs.
QUICK = Settings(lr=1e-2, steps=25, depth=2, dtypes=("fp32", "fp16"), variants=DEFAULT_VARIANTS[:2])


def failed(final_loss: float, start_loss: float) -> bool:
    return not math.isfinite(final_loss) or final_loss > start_loss - LEARNED


def verdict_precision(fails: dict[str, dict[str, bool]]) -> tuple[Verdict, str]:
    """Judge from {variant: {dtype: failed}} with dtypes fp32 and fp16 (bf16 reported only)."""
    post = pick(list(fails), "post")
    if post is None or not {"fp32", "fp16"} <= set(fails[post]):
        return Verdict.INCONCLUSIVE, "needs a post-* variant run in fp32 and fp16"
    p = fails[post]
    others = [v for v in fails if v != post and "fp16" in fails[v]]
    if all(p.values()):
        return Verdict.REFUTED, f"{post} fails in every dtype: an optimization failure, not numeric"
    if not p["fp16"]:
        return Verdict.REFUTED, f"{post} trains in fp16 as in fp32"
    if p["fp32"]:
        return Verdict.INCONCLUSIVE, f"{post} fails in fp32 and fp16 but not in every dtype"
    broken = [v for v in others if fails[v]["fp16"] and not fails[v]["fp32"]]
    if not others:
        return Verdict.INCONCLUSIVE, f"{post} fails only in fp16, but no other variant to compare"
    if broken:
        return Verdict.INCONCLUSIVE, f"{post} fails only in fp16, but so do {', '.join(broken)}"
    return Verdict.CONFIRMED, f"{post} fails only in fp16; {', '.join(others)} train in fp16"


def run(ctx: ProbeContext) -> Outcome:
    cfg = QUICK if ctx.quick else FULL
    depth = ctx.train_depth(cfg.depth)
    variants = ctx.variants(cfg.variants)
    start = math.log(64)
    numbers: dict[str, float | list | str] = {
        "lr": cfg.lr,
        "steps": cfg.steps,
        "depth": depth,
        "start_loss": start,
    }
    fails: dict[str, dict[str, bool]] = {v: {} for v in variants}
    jobs, done = len(variants) * len(cfg.dtypes), 0
    for v in variants:
        curves = {}
        for dtype in cfg.dtypes:
            model = build_model(v, depth, seed=ctx.seed, device=ctx.device)
            log = train(
                model,
                steps=cfg.steps,
                lr=cfg.lr,
                seed=ctx.seed,
                dtype=dtype,
                device=ctx.device,
                track_residual=True,
            )
            final = log.final_loss()
            fails[v][dtype] = failed(final, start)
            curves[dtype] = log.losses
            key = f"{v}/{dtype}"
            numbers[f"final_loss/{key}"] = final
            numbers[f"failed/{key}"] = "yes" if fails[v][dtype] else "no"
            numbers[f"nonfinite_steps/{key}"] = float(log.nonfinite_steps)
            numbers[f"scaler_skips/{key}"] = float(log.scaler_skips)
            numbers[f"peak_residual/{key}"] = log.peak_residual
            done += 1
            ctx.report(f"precision {v} {dtype}", done / jobs)
        for dtype in cfg.dtypes[1:]:
            # How closely the low-precision run tracks fp32 over the steps both completed.
            pairs = zip(curves["fp32"], curves[dtype], strict=False)
            gaps = [abs(a - b) for a, b in pairs if math.isfinite(a) and math.isfinite(b)]
            numbers[f"max_loss_gap_vs_fp32/{v}/{dtype}"] = max(gaps, default=math.nan)
    verdict, reason = verdict_precision(fails)
    status = "; ".join(
        f"{v}: "
        + " ".join(
            f"{d} {numbers[f'final_loss/{v}/{d}']:.2f}"
            + (f" ({int(numbers[f'nonfinite_steps/{v}/{d}'])} non-finite)" if d != "fp32" else "")
            for d in cfg.dtypes
        )
        for v in variants
    )
    summary = f"final loss at lr {cfg.lr:g} after {cfg.steps} steps: {status}; {reason}"
    return Outcome(verdict, numbers, THRESHOLD, CAVEAT, summary)
