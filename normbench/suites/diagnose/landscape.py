"""landscape: do norms make the loss landscape smoother?

Santurkar et al. 2018 ("How Does Batch Normalization Help Optimization?", Sec. 3.1, Fig. 4) move
along the gradient from points on the training trajectory and measure the variation of the loss,
the change of the gradient ("gradient predictiveness") and the effective beta-smoothness
max ||g(theta + r d) - g(theta)|| / r. We do the same on the toy LM at a few training steps, and add
the top Hessian eigenvalue (power iteration on Hessian-vector products) as a second curvature
measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.func import functional_call

from normbench.suites.diagnose.common import Outcome, ProbeContext, Verdict, fmt
from normbench.suites.diagnose.data import MarkovChain
from normbench.suites.diagnose.model import ToyLM, build_model
from normbench.suites.diagnose.training import train

DEFAULT_VARIANTS = ("pre-layernorm", "pre-rmsnorm", "none")
LR = 1e-3
SMOOTHER = 0.5  # normalized/none ratio at most this on both measures: "clearly smoother"

THRESHOLD = (
    "ratio = normalized variant / none, averaged over the checkpoints after step 0, for effective "
    f"beta and top Hessian eigenvalue; confirmed if every normalized variant has both ratios <= "
    f"{SMOOTHER}; refuted if every one has both ratios >= 1; inconclusive otherwise"
)
CAVEAT = (
    "Santurkar et al. studied BatchNorm in CNNs (VGG on CIFAR-10); this is LayerNorm/RMSNorm in a "
    "tiny Transformer, on one batch and one seed, along the gradient direction only."
)


@dataclass(frozen=True)
class Settings:
    checkpoints: tuple[int, ...]
    radii: tuple[float, ...]
    power_iters: int
    depth: int


FULL = Settings(checkpoints=(0, 50, 200), radii=(0.05, 0.1, 0.2, 0.4), power_iters=20, depth=6)
QUICK = Settings(checkpoints=(0, 50), radii=(0.05, 0.2, 0.4), power_iters=8, depth=3)


def verdict_landscape(
    beta: dict[str, dict[int, float]], eig: dict[str, dict[int, float]]
) -> tuple[Verdict, str]:
    """Judge from effective beta and top |eigenvalue| per variant per checkpoint step."""
    if "none" not in beta:
        return Verdict.INCONCLUSIVE, "needs the 'none' variant as the unnormalized baseline"
    normed = [v for v in beta if v != "none"]
    if not normed:
        return Verdict.INCONCLUSIVE, "needs a normalized variant to compare with none"
    steps = [s for s in beta["none"] if s > 0] or list(beta["none"])

    def ratio(table: dict[str, dict[int, float]], v: str) -> float:
        return sum(table[v][s] / table["none"][s] for s in steps) / len(steps)

    rb = {v: ratio(beta, v) for v in normed}
    re = {v: ratio(eig, v) for v in normed}
    if not all(math.isfinite(x) for x in [*rb.values(), *re.values()]):
        return Verdict.INCONCLUSIVE, "a smoothness ratio is not finite"
    text = ", ".join(f"{v} beta {rb[v]:.2f}x / eig {re[v]:.2f}x of none" for v in normed)
    if all(rb[v] <= SMOOTHER and re[v] <= SMOOTHER for v in normed):
        return Verdict.CONFIRMED, text
    if all(rb[v] >= 1 and re[v] >= 1 for v in normed):
        return Verdict.REFUTED, text
    return Verdict.INCONCLUSIVE, text


def _loss_and_grad(
    model: ToyLM, params: dict[str, torch.Tensor], tokens: torch.Tensor, create_graph: bool = False
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    logits = functional_call(model, params, (tokens[:, :-1],))
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)
    )
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
    return loss, list(grads)


def _flat(ts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in ts])


def measure_point(
    model: ToyLM, tokens: torch.Tensor, radii: tuple[float, ...], power_iters: int, seed: int
) -> dict[str, float]:
    """Loss variation, gradient change, effective beta and top Hessian eigenvalue at `model`."""
    base = {n: p.detach().requires_grad_(True) for n, p in model.named_parameters()}
    loss0, g0 = _loss_and_grad(model, base, tokens)
    g0f = _flat(g0)
    direction = [-g / g0f.norm() for g in g0]  # unit step downhill
    losses, changes = [float(loss0.detach())], []
    for r in radii:
        moved = {
            n: (p + r * d).detach().requires_grad_(True)
            for (n, p), d in zip(base.items(), direction, strict=True)
        }
        loss_r, g_r = _loss_and_grad(model, moved, tokens)
        losses.append(float(loss_r.detach()))
        changes.append(float((_flat(g_r) - g0f).norm()))
    beta = max(c / r for c, r in zip(changes, radii, strict=True))

    # Power iteration on Hessian-vector products (double backward through the same batch).
    _, g = _loss_and_grad(model, base, tokens, create_graph=True)
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(g0f.numel(), generator=gen).to(g0f.device)
    v /= v.norm()
    eig = 0.0
    for i in range(power_iters):
        gv = torch.dot(_flat(g), v)
        hv = _flat(torch.autograd.grad(gv, list(base.values()), retain_graph=i < power_iters - 1))
        eig = float(torch.dot(v, hv))  # Rayleigh quotient
        v = hv / hv.norm()
    return {
        "loss": float(loss0.detach()),
        "loss_variation": max(losses) - min(losses),
        "grad_change": max(changes),
        "beta": beta,
        "top_eig": abs(eig),
    }


def run(ctx: ProbeContext) -> Outcome:
    cfg = QUICK if ctx.quick else FULL
    depth = ctx.train_depth(cfg.depth)
    variants = ctx.variants(DEFAULT_VARIANTS)
    points: dict[str, dict[int, dict[str, float]]] = {v: {} for v in variants}
    jobs, done = len(variants) * len(cfg.checkpoints), 0
    for v in variants:
        model = build_model(v, depth, seed=ctx.seed, device=ctx.device)
        # One fixed probe batch, separate from the training stream.
        chain = MarkovChain(vocab=model.cfg.vocab, seed=ctx.seed, stream=10_000)
        tokens = chain.sample(16, model.cfg.seq, ctx.device)
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        trained = 0
        for step in cfg.checkpoints:
            if step > trained:
                # Resume the trajectory (same optimizer) on fresh batches of the same language.
                n, stream = step - trained, trained
                train(
                    model,
                    steps=n,
                    lr=LR,
                    seed=ctx.seed,
                    stream=stream,
                    device=ctx.device,
                    optimizer=opt,
                )
                trained = step
            points[v][step] = measure_point(model, tokens, cfg.radii, cfg.power_iters, ctx.seed)
            done += 1
            ctx.report(f"landscape {v} step {step}", done / jobs)

    beta = {v: {s: p["beta"] for s, p in points[v].items()} for v in variants}
    eig = {v: {s: p["top_eig"] for s, p in points[v].items()} for v in variants}
    verdict, reason = verdict_landscape(beta, eig)
    numbers: dict[str, float | list | str] = {
        "checkpoints": list(cfg.checkpoints),
        "radii": list(cfg.radii),
        "depth": depth,
        "lr": LR,
    }
    for v in variants:
        for key in ("loss", "loss_variation", "grad_change", "beta", "top_eig"):
            numbers[f"{key}/{v}"] = [points[v][s][key] for s in cfg.checkpoints]
    mid = cfg.checkpoints[min(1, len(cfg.checkpoints) - 1)]
    at_mid = ", ".join(
        f"{v} beta {fmt(beta[v][mid], 2)} eig {fmt(eig[v][mid], 2)}" for v in variants
    )
    summary = f"at step {mid}: {at_mid}; {reason}"
    return Outcome(verdict, numbers, THRESHOLD, CAVEAT, summary)
