"""attention-gain: does LayerNorm stop large tokens from dominating attention?

The "gain control" reading of LayerNorm (Ba et al. 2016; Xiong et al. 2020 for Pre-LN
placement): without a norm, scaling a token's vector by s scales its key by s, so the attention
logits to it grow by s and softmax hands it most of the attention; normalizing the attention input
first removes the scale. The flip side, massive activations (Sun et al. 2024, "Massive
Activations in Large Language Models"), is one huge channel rather than a uniformly large token: LN
maps such a token to nearly a one-hot direction instead of removing it. One attention layer of the
toy model (4 heads, Xavier init), 32 tokens N(0, 1); attention paid to token 8 by the queries that
can see it.
"""

from __future__ import annotations

import math

import torch

from normbench.suites.diagnose.common import Outcome, ProbeContext, Verdict, fmt
from normbench.suites.diagnose.model import build_model
from normbench.suites.diagnose.norms import functional_norm
from normbench.suites.diagnose.plotting import save_figure

SCALES = (1, 2, 4, 8, 16, 32, 64)
MASSIVE = (10.0, 100.0, 1000.0)
TARGET = 8  # the token we scale; queries 8..31 can attend to it
NORMS = ("none", "layernorm", "rmsnorm")
FLAT = 0.02  # share range under a norm at most this: "flat"
GROWS = 2.0  # share without a norm grows at least this factor: "dominates"
NO_EFFECT = 1.25  # growth below this without a norm: magnitude does not drive attention here

THRESHOLD = (
    f"share = mean attention to the scaled token; confirmed if its range over scales 1..64 is <= "
    f"{FLAT} under LN and RMS and it grows >= {GROWS}x without a norm; refuted if it grows < "
    f"{NO_EFFECT}x without a norm or a norm does not keep it flat (range > {FLAT}) while growing "
    "as much; inconclusive otherwise"
)
CAVEAT = (
    "One randomly initialized attention layer; trained q/k weights can amplify or ignore a large "
    "token. A norm does not remove a massive single channel: it turns the token into a near "
    "one-hot vector, whose attention then depends on the q/k weights (see massive_share)."
)


def verdict_attention_gain(share: dict[str, list[float]]) -> tuple[Verdict, str]:
    """Judge from attention share per norm ('none', 'layernorm', 'rmsnorm'), ordered by scale."""
    if "none" not in share or len(share) < 2:
        return Verdict.INCONCLUSIVE, "needs 'none' and at least one norm"
    base = share["none"]
    if not all(math.isfinite(v) for s in share.values() for v in s) or base[0] <= 0:
        return Verdict.INCONCLUSIVE, "a share is not finite and positive"
    growth = base[-1] / base[0]
    normed = {k: v for k, v in share.items() if k != "none"}
    ranges = {k: max(v) - min(v) for k, v in normed.items()}
    text = f"without a norm {base[0]:.3f} -> {base[-1]:.3f} ({growth:.1f}x); " + ", ".join(
        f"{k} range {r:.3g}" for k, r in ranges.items()
    )
    if growth >= GROWS and all(r <= FLAT for r in ranges.values()):
        return Verdict.CONFIRMED, text
    not_flat = [k for k, r in ranges.items() if r > FLAT and normed[k][-1] / normed[k][0] >= growth]
    if growth < NO_EFFECT or not_flat:
        return Verdict.REFUTED, text
    return Verdict.INCONCLUSIVE, text


@torch.no_grad()
def attention_to_target(attn, x: torch.Tensor, norm: str) -> tuple[float, float]:
    """Mean attention the visible queries pay to TARGET, and mean attention entropy (nats)."""
    probs, _ = attn.scores(functional_norm(x, norm))  # (B, H, T, T)
    visible = probs[:, :, TARGET:, :]  # queries at or after the target
    share = float(visible[..., TARGET].mean())
    entropy = float(-(visible * visible.clamp_min(1e-30).log()).sum(-1).mean())
    return share, entropy


def run(ctx: ProbeContext) -> Outcome:
    attn = build_model("pre-layernorm", depth=1, seed=ctx.seed, device=ctx.device).blocks[0].attn
    gen = torch.Generator().manual_seed(ctx.seed)
    draws = 8 if ctx.quick else 32
    x = torch.randn(draws, 32, 64, generator=gen).to(ctx.device)
    share: dict[str, list[float]] = {n: [] for n in NORMS}
    entropy: dict[str, list[float]] = {n: [] for n in NORMS}
    massive: dict[str, list[float]] = {n: [] for n in NORMS}
    jobs, done = len(NORMS) * (len(SCALES) + len(MASSIVE)), 0
    for n in NORMS:
        for s in SCALES:
            xs = x.clone()
            xs[:, TARGET] *= s
            a, h = attention_to_target(attn, xs, n)
            share[n].append(a)
            entropy[n].append(h)
            done += 1
            ctx.report(f"attention-gain {n} scale {s}", done / jobs)
        for m in MASSIVE:
            xm = x.clone()
            xm[:, TARGET, 0] = m  # one massive channel
            massive[n].append(attention_to_target(attn, xm, n)[0])
            done += 1
            ctx.report(f"attention-gain {n} channel {m:g}", done / jobs)
    verdict, reason = verdict_attention_gain(share)
    numbers: dict[str, float | list | str] = {
        "scales": list(SCALES),
        "massive_values": list(MASSIVE),
        "target_position": TARGET,
    }
    for n in NORMS:
        numbers[f"share/{n}"] = share[n]
        numbers[f"entropy/{n}"] = entropy[n]
        numbers[f"massive_share/{n}"] = massive[n]

    def draw(ax) -> None:
        for n in NORMS:
            ax.plot(SCALES, share[n], "o-", label=f"{n} before q, k")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("scale of one token")
        ax.set_ylabel(f"attention paid to it (mean over queries >= {TARGET})")
        ax.legend(fontsize=8)

    figure = save_figure(
        ctx.figure_path("attention-gain"), draw, title="Attention share vs token scale"
    )
    summary = (
        "attention share to a token scaled 1 -> 64: "
        + ", ".join(f"{n} {fmt(share[n][0], 2)} -> {fmt(share[n][-1], 2)}" for n in NORMS)
        + "; one channel at 1000: "
        + ", ".join(f"{n} {fmt(massive[n][-1], 2)}" for n in NORMS)
        + f"; {reason}"
    )
    return Outcome(verdict, numbers, THRESHOLD, CAVEAT, summary, figure)
