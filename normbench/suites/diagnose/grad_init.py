"""grad-init: gradient scale at initialization vs depth, Post-LN vs Pre-LN.

Xiong et al. 2020 ("On Layer Normalization in the Transformer Architecture", Thm. 1) show that at
Xavier init the gradient of the last layer's FFN weights is O(d sqrt(ln d)) for Post-LN, independent
of the depth L, and O(d sqrt(ln d / L)) for Pre-LN: on a log-log plot against L, slope 0 vs -0.5.
We measure that slope on the toy LM, averaged over seeds.
"""

from __future__ import annotations

import math

import torch

from normbench.suites.diagnose.common import Outcome, ProbeContext, Verdict, fmt, loglog_slope, pick
from normbench.suites.diagnose.data import MarkovChain
from normbench.suites.diagnose.model import build_model
from normbench.suites.diagnose.plotting import save_figure

DEFAULT_VARIANTS = ("post-layernorm", "pre-layernorm", "deepnorm-layernorm")
DEFAULT_DEPTHS = (6, 12, 24)
# Theory says 0 (Post) vs -0.5 (Pre): each slope must sit on its own side of the midpoint.
FLAT = 0.25  # |slope| at most this: "does not shrink with depth"
STEEP = -0.25  # slope at most this: "clearly shrinks"
GAP = 0.1  # Pre-LN must be at least this much steeper than Post-LN, or the claim is refuted

THRESHOLD = (
    f"confirmed if |slope(Post-LN)| <= {FLAT} and slope(Pre-LN) <= {STEEP}; refuted if "
    f"slope(Pre-LN) > slope(Post-LN) - {GAP}; inconclusive otherwise "
    "(slope of log last-layer FFN-weight gradient norm vs log depth)"
)
CAVEAT = (
    "Xiong et al.'s bound is for the expected gradient at Xavier init with ReLU FFNs; a toy model "
    "of width 64 with a few seeds gives noisy slopes, and it says nothing about later training."
)


def verdict_grad_init(slopes: dict[str, float]) -> tuple[Verdict, str]:
    """Judge the claim from log-log slopes keyed by variant name (uses post-* and pre-*)."""
    post, pre = pick(list(slopes), "post"), pick(list(slopes), "pre")
    if post is None or pre is None:
        return Verdict.INCONCLUSIVE, "needs a post-* and a pre-* variant to compare"
    sp, sr = slopes[post], slopes[pre]
    if not (math.isfinite(sp) and math.isfinite(sr)):
        return Verdict.INCONCLUSIVE, f"a slope is not finite ({post} {sp}, {pre} {sr})"
    if abs(sp) <= FLAT and sr <= STEEP:
        return Verdict.CONFIRMED, f"{post} slope {sp:.2f} is flat and {pre} slope {sr:.2f} shrinks"
    if sr > sp - GAP:
        return Verdict.REFUTED, f"{pre} slope {sr:.2f} is not steeper than {post} slope {sp:.2f}"
    text = f"{post} slope {sp:.2f}, {pre} slope {sr:.2f}: between the thresholds"
    return Verdict.INCONCLUSIVE, text


def layer_grad_norms(variant: str, depth: int, seed: int, device: str) -> list[float]:
    """Gradient norm of each block's second FFN weight after one backward pass at init."""
    model = build_model(variant, depth, seed=seed, device=device)
    tokens = MarkovChain(vocab=model.cfg.vocab, seed=seed).sample(16, model.cfg.seq, device)
    model.loss(tokens).backward()
    return [float(torch.linalg.vector_norm(b.ffn.fc2.weight.grad)) for b in model.blocks]


def run(ctx: ProbeContext) -> Outcome:
    variants = ctx.variants(DEFAULT_VARIANTS)
    depths = ctx.depth_list(DEFAULT_DEPTHS)
    seeds = [ctx.seed + i for i in range(3 if ctx.quick else 5)]
    # per_layer[variant][depth] = per-layer norms averaged over seeds
    per_layer: dict[str, dict[int, list[float]]] = {v: {} for v in variants}
    jobs = len(variants) * len(depths) * len(seeds)
    done = 0
    for v in variants:
        for depth in depths:
            runs = []
            for s in seeds:
                runs.append(layer_grad_norms(v, depth, s, ctx.device))
                done += 1
                ctx.report(f"grad-init {v} L={depth} seed {s}", done / jobs)
            per_layer[v][depth] = [sum(col) / len(col) for col in zip(*runs, strict=True)]
    last = {v: [per_layer[v][d][-1] for d in depths] for v in variants}
    slopes = {v: loglog_slope(depths, last[v]) if len(depths) > 1 else math.nan for v in variants}
    verdict, reason = verdict_grad_init(slopes)

    numbers: dict[str, float | list | str] = {"depths": depths, "seeds": len(seeds)}
    for v in variants:
        numbers[f"slope/{v}"] = slopes[v]
        numbers[f"last_layer_grad/{v}"] = last[v]
    deepest = depths[-1]
    for v in variants:
        numbers[f"per_layer_grad_L{deepest}/{v}"] = per_layer[v][deepest]

    def draw(ax) -> None:
        styles = ["-", "--", ":", "-."]
        for i, v in enumerate(variants):
            for j, depth in enumerate(depths):
                ys = per_layer[v][depth]
                label = f"{v} L={depth}"
                ax.plot(range(1, depth + 1), ys, styles[j % 4], color=f"C{i}", label=label)
        ax.set_yscale("log")
        ax.set_xlabel("layer")
        ax.set_ylabel("|grad| of FFN W2 at init")
        ax.legend(fontsize=6, ncol=2)

    title = "Gradient norm per layer at init"
    figure = save_figure(ctx.figure_path("grad-init"), draw, title=title)
    slope_text = ", ".join(f"{v} {fmt(slopes[v], 2)}" for v in variants)
    summary = f"log-log slope of last-layer gradient vs depth {depths}: {slope_text}; {reason}"
    return Outcome(verdict, numbers, THRESHOLD, CAVEAT, summary, figure)
