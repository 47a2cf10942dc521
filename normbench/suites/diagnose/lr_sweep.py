"""lr-sweep: do norms allow larger learning rates, and does Post-LN need warm-up?

LR sensitivity follows Wortsman et al. 2023 ("Small-scale proxies for large-scale Transformer
training instabilities", Sec. 2): the mean over a learning-rate grid of the final loss capped at the
starting loss, minus the best final loss on the grid. A model that trains well over a wide range of
lr has low sensitivity. The warm-up half of the claim is from Xiong et al. 2020 / Liu et al. 2020
(Post-LN needs it, Pre-LN does not). Every run sees the same batches (same seed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from normbench.suites.diagnose.common import Outcome, ProbeContext, Verdict, fmt, pick
from normbench.suites.diagnose.model import ModelConfig, build_model
from normbench.suites.diagnose.plotting import save_figure
from normbench.suites.diagnose.training import train

DEFAULT_VARIANTS = ("pre-layernorm", "pre-rmsnorm", "post-layernorm", "none")
WARMUP_SUFFIX = "+warmup"
MARGIN = 0.05  # nats: differences in sensitivity smaller than this are noise
LEARNED = 0.5  # a run is "stable" if it ends at least this far below the starting loss

THRESHOLD = (
    "sensitivity = mean over the lr grid of min(final loss, ln vocab) - best final loss "
    f"(Wortsman et al.); (a) every pre-* variant has sensitivity < none - {MARGIN} and a max "
    f"stable lr (final loss <= ln vocab - {LEARNED}) >= none's; (b) warm-up lowers Post-LN's "
    f"sensitivity by > {MARGIN}; confirmed if (a) and (b), refuted if neither, else inconclusive"
)
CAVEAT = (
    "A few hundred steps of a 6-layer toy model on one seed; the grid, step count and warm-up "
    "length set the absolute numbers, so compare variants with each other, not with the paper."
)


@dataclass(frozen=True)
class Settings:
    lrs: tuple[float, ...]
    steps: int
    warmup: int
    depth: int


FULL = Settings(lrs=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2), steps=200, warmup=50, depth=6)
QUICK = Settings(lrs=(1e-3, 1e-2, 3e-2), steps=40, warmup=15, depth=2)


def capped(finals: Sequence[float], cap: float) -> list[float]:
    """Final losses with divergence (NaN, inf or above the start) counted as the start loss."""
    return [min(x, cap) if math.isfinite(x) else cap for x in finals]


def lr_sensitivity(finals: Sequence[float], cap: float) -> float:
    c = capped(finals, cap)
    return sum(c) / len(c) - min(c)


def max_stable_lr(lrs: Sequence[float], finals: Sequence[float], cap: float) -> float:
    """Largest lr whose run ended at least LEARNED nats below the start; 0 if none did."""
    ok = [lr for lr, x in zip(lrs, capped(finals, cap), strict=True) if x <= cap - LEARNED]
    return max(ok, default=0.0)


def verdict_lr_sweep(
    sensitivity: dict[str, float], max_stable: dict[str, float]
) -> tuple[Verdict, str]:
    """Judge from per-run sensitivity and max stable lr (warm-up runs keyed 'post-...+warmup')."""
    names = [k for k in sensitivity if not k.endswith(WARMUP_SUFFIX)]
    pres = [k for k in names if k.startswith("pre-")]
    post = pick(names, "post")
    reasons = []
    a: bool | None = None
    if "none" in sensitivity and pres:
        a = all(
            sensitivity[p] < sensitivity["none"] - MARGIN and max_stable[p] >= max_stable["none"]
            for p in pres
        )
        verb = "beat" if a else "do not all beat"
        reasons.append(f"pre variants {verb} none on sensitivity and max stable lr")
    b: bool | None = None
    if post is not None and post + WARMUP_SUFFIX in sensitivity:
        gain = sensitivity[post] - sensitivity[post + WARMUP_SUFFIX]
        b = gain > MARGIN
        reasons.append(f"warm-up changes {post} sensitivity by {-gain:+.2f}")
    reason = "; ".join(reasons) or "needs pre-*, none and post-* runs"
    if a is None or b is None:
        return Verdict.INCONCLUSIVE, reason
    if a and b:
        return Verdict.CONFIRMED, reason
    if not a and not b:
        return Verdict.REFUTED, reason
    return Verdict.INCONCLUSIVE, reason


def run(ctx: ProbeContext) -> Outcome:
    cfg = QUICK if ctx.quick else FULL
    depth = ctx.train_depth(cfg.depth)
    variants = ctx.variants(DEFAULT_VARIANTS)
    # Warm-up runs only for Post variants: the claim is that warm-up rescues Post-LN.
    runs = [(v, 0) for v in variants] + [(v, cfg.warmup) for v in variants if v.startswith("post")]
    cap = math.log(ModelConfig.vocab)  # a uniform guess: where an untrained model starts
    finals: dict[str, list[float]] = {}
    jobs, done = len(runs) * len(cfg.lrs), 0
    for v, warmup in runs:
        name = v + (WARMUP_SUFFIX if warmup else "")
        finals[name] = []
        for lr in cfg.lrs:
            model = build_model(v, depth, seed=ctx.seed, device=ctx.device)
            log = train(
                model, steps=cfg.steps, lr=lr, seed=ctx.seed, warmup=warmup, device=ctx.device
            )
            finals[name].append(log.final_loss())
            done += 1
            ctx.report(f"lr-sweep {name} lr={lr:g}", done / jobs)
    sens = {k: lr_sensitivity(f, cap) for k, f in finals.items()}
    stable = {k: max_stable_lr(cfg.lrs, f, cap) for k, f in finals.items()}
    verdict, reason = verdict_lr_sweep(sens, stable)

    numbers: dict[str, float | list | str] = {
        "lrs": list(cfg.lrs),
        "steps": cfg.steps,
        "warmup_steps": cfg.warmup,
        "depth": depth,
        "start_loss": cap,
    }
    for k in finals:
        numbers[f"final_loss/{k}"] = finals[k]
        numbers[f"sensitivity/{k}"] = sens[k]
        numbers[f"max_stable_lr/{k}"] = stable[k]

    def draw(ax) -> None:
        for i, v in enumerate(variants):
            ax.plot(cfg.lrs, capped(finals[v], cap), "o-", color=f"C{i}", label=v)
            if v + WARMUP_SUFFIX in finals:
                ys = capped(finals[v + WARMUP_SUFFIX], cap)
                ax.plot(cfg.lrs, ys, "s--", color=f"C{i}", label=f"{v} + {cfg.warmup}-step warm-up")
        ax.axhline(cap, color="gray", lw=0.8, ls=":", label="start loss (cap)")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (Adam)")
        ax.set_ylabel(f"final loss after {cfg.steps} steps (nats, capped)")
        ax.legend(fontsize=7)

    title = f"Loss vs learning rate, depth {depth}"
    figure = save_figure(ctx.figure_path("lr-sweep"), draw, title=title)
    parts = ", ".join(f"{k} {fmt(sens[k], 2)} (max lr {stable[k]:g})" for k in finals)
    summary = f"LR sensitivity: {parts}; {reason}"
    return Outcome(verdict, numbers, THRESHOLD, CAVEAT, summary, figure)
