"""amplify: how far one optimizer step moves the model's output, vs depth.

Liu et al. 2020 ("Understanding the Difficulty of Training Transformers", Admin, Thm. 2 and
Fig. 4) argue that Post-LN's heavy dependence on its residual branches amplifies parameter
updates: after one Adam step the output changes by O(L) for Post-LN and O(log L) for Pre-LN, which
is why deep Post-LN training is unstable without warm-up. We take one Adam step (lr 1e-4) from
init and measure the mean squared change of the final hidden state on the same batch.
"""

from __future__ import annotations

import math

import torch

from normbench.suites.diagnose.common import Outcome, ProbeContext, Verdict, fmt, loglog_slope, pick
from normbench.suites.diagnose.data import MarkovChain
from normbench.suites.diagnose.model import build_model

DEFAULT_VARIANTS = ("post-layernorm", "pre-layernorm", "deepnorm-layernorm")
DEFAULT_DEPTHS = (6, 24, 48)
LR = 1e-4
GROWTH = 1.5  # the Post/Pre ratio must grow by half from the shallowest to the deepest model
FLAT = 1.1  # ... and growing by no more than this refutes the claim

THRESHOLD = (
    f"ratio = output change Post-LN / Pre-LN; confirmed if ratio(deepest) >= {GROWTH} x "
    f"ratio(shallowest) and ratio(deepest) > 1; refuted if ratio(deepest) <= {FLAT} x "
    "ratio(shallowest); inconclusive otherwise"
)
CAVEAT = (
    "One Adam step from init on one batch: Adam's first step moves every weight by about lr, as in "
    "Liu et al.'s analysis. The final hidden state is normalized, so its change saturates (at 2 "
    "for decorrelated outputs): at lr 1e-4 Post-LN's growth flattens past L = 24."
)


def verdict_amplify(ratios: dict[int, float]) -> tuple[Verdict, str]:
    """Judge from Post/Pre output-change ratios keyed by depth."""
    if len(ratios) < 2:
        return Verdict.INCONCLUSIVE, "needs two or more depths"
    lo, hi = min(ratios), max(ratios)
    r_lo, r_hi = ratios[lo], ratios[hi]
    if not (math.isfinite(r_lo) and math.isfinite(r_hi)) or r_lo <= 0:
        return Verdict.INCONCLUSIVE, f"a ratio is not finite and positive ({r_lo}, {r_hi})"
    growth = r_hi / r_lo
    text = f"Post/Pre ratio {r_lo:.2f}x at L={lo} -> {r_hi:.2f}x at L={hi} (growth {growth:.2f}x)"
    if growth >= GROWTH and r_hi > 1:
        return Verdict.CONFIRMED, text
    if growth <= FLAT:
        return Verdict.REFUTED, text
    return Verdict.INCONCLUSIVE, text


def output_change(variant: str, depth: int, seed: int, device: str) -> float:
    """Mean squared change of the final hidden state after one Adam step at lr 1e-4."""
    model = build_model(variant, depth, seed=seed, device=device)
    tokens = MarkovChain(vocab=model.cfg.vocab, seed=seed).sample(16, model.cfg.seq, device)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    with torch.no_grad():
        before = model.hidden(tokens[:, :-1])
    model.loss(tokens).backward()
    opt.step()
    with torch.no_grad():
        after = model.hidden(tokens[:, :-1])
    return float((after - before).pow(2).mean())


def run(ctx: ProbeContext) -> Outcome:
    # Quick drops DeepNorm: the claim compares Post with Pre, and depth 48 dominates the cost.
    variants = ctx.variants(DEFAULT_VARIANTS[:2] if ctx.quick else DEFAULT_VARIANTS)
    depths = ctx.depth_list(DEFAULT_DEPTHS)
    seeds = [ctx.seed + i for i in range(2 if ctx.quick else 3)]
    change: dict[str, dict[int, float]] = {v: {} for v in variants}
    jobs, done = len(variants) * len(depths) * len(seeds), 0
    for v in variants:
        for depth in depths:
            values = []
            for s in seeds:
                values.append(output_change(v, depth, s, ctx.device))
                done += 1
                ctx.report(f"amplify {v} L={depth} seed {s}", done / jobs)
            change[v][depth] = sum(values) / len(values)

    numbers: dict[str, float | list | str] = {"depths": depths, "lr": LR, "seeds": len(seeds)}
    for v in variants:
        numbers[f"change/{v}"] = [change[v][d] for d in depths]
        if len(depths) > 1:
            numbers[f"slope/{v}"] = loglog_slope(depths, numbers[f"change/{v}"])
    post, pre = pick(variants, "post"), pick(variants, "pre")
    if post is None or pre is None:
        verdict, reason = Verdict.INCONCLUSIVE, "needs a post-* and a pre-* variant to compare"
    else:
        ratios = {d: change[post][d] / change[pre][d] for d in depths}
        numbers["ratio_post_pre"] = [ratios[d] for d in depths]
        verdict, reason = verdict_amplify(ratios)
    parts = "; ".join(f"{v} " + " ".join(fmt(change[v][d], 2) for d in depths) for v in variants)
    summary = f"mean squared output change after one step at L={depths}: {parts}; {reason}"
    return Outcome(verdict, numbers, THRESHOLD, CAVEAT, summary)
