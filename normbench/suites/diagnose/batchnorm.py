"""batchnorm: is BatchNorm diluted by padding, noisy in small batches and batch-dependent?

Shen et al. 2020 ("PowerNorm: Rethinking Batch Normalization in Transformers", Sec. 3) trace
BatchNorm's failure in NLP Transformers to batch statistics that fluctuate across batches and are
polluted by padding; Ba et al. 2016 ("Layer Normalization") note BN's dependence on the mini-batch
and its leak across time steps in sequence models. Four measurements on activations N(1, 2^2),
batch 16 x seq 32 x width 64, BN over every token (as a drop-in for LN) vs LN:
  (a) padding: zero-padded positions 0..90%; mean/std of the output on the real tokens and its
      change from the unpadded output;
  (b) batch-mates: one fixed sequence in 20 random batches; max change of its output;
  (c) small batches: std of the batch mean vs batch x seq tokens;
  (d) causal leak: perturb the second half of every sequence; max change of the first half.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from normbench.suites.diagnose.common import Outcome, ProbeContext, Verdict, fmt

B, T, D = 16, 32, 64
MEAN, STD = 1.0, 2.0
PAD_FRACTIONS = (0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9)
BATCH_SIZES = (2, 4, 16)
ZERO = 1e-6  # a change at most this is "no change" (LN's is exactly 0 in fp32)
CHANGED = 1e-2  # a change at least this is real

THRESHOLD = (
    f"confirmed if every LayerNorm change (padding, batch-mates, causal) is <= {ZERO} and every "
    f"BatchNorm change is >= {CHANGED}; refuted if no BatchNorm change reaches {CHANGED} or a "
    f"LayerNorm change does; inconclusive otherwise"
)
CAVEAT = (
    "Synthetic Gaussian activations and BN in training mode with batch statistics over all "
    "tokens, padding included (the naive drop-in); masked BN or running statistics at inference "
    "remove some effects but not the train/test mismatch."
)


def _bn(x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x.reshape(-1, x.shape[-1]), None, None, training=True).view_as(x)


def _ln(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],))


NORMS = {"batchnorm": _bn, "layernorm": _ln}


def verdict_batchnorm(changes: dict[str, dict[str, float]]) -> tuple[Verdict, str]:
    """Judge from max output changes {norm: {test: change}} for 'layernorm' and 'batchnorm'."""
    if "layernorm" not in changes or "batchnorm" not in changes:
        return Verdict.INCONCLUSIVE, "needs both layernorm and batchnorm measurements"
    ln, bn = changes["layernorm"], changes["batchnorm"]
    if not all(math.isfinite(v) for v in [*ln.values(), *bn.values()]):
        return Verdict.INCONCLUSIVE, "a change is not finite"
    text = ", ".join(f"{k}: LN {ln[k]:.3g} vs BN {bn[k]:.3g}" for k in bn)
    if all(v <= ZERO for v in ln.values()) and all(v >= CHANGED for v in bn.values()):
        return Verdict.CONFIRMED, text
    if all(v < CHANGED for v in bn.values()) or any(v >= CHANGED for v in ln.values()):
        return Verdict.REFUTED, text
    return Verdict.INCONCLUSIVE, text


def _acts(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return MEAN + STD * torch.randn(*shape, generator=gen)


def padding_test(gen: torch.Generator, device: str) -> dict[str, dict[str, list[float]]]:
    """Per norm: mean, std and max change of the real tokens' output at each pad fraction."""
    x = _acts(gen, B, T, D).to(device)
    out: dict[str, dict[str, list[float]]] = {
        n: {"mean": [], "std": [], "change": []} for n in NORMS
    }
    for p in PAD_FRACTIONS:
        real = T - round(p * T)  # right padding: the last positions of every sequence are zeros
        padded = x.clone()
        padded[:, real:] = 0.0
        for name, norm in NORMS.items():
            y_real = norm(padded)[:, :real]
            out[name]["mean"].append(float(y_real.mean()))
            out[name]["std"].append(float(y_real.std(correction=0)))
            out[name]["change"].append(float((y_real - norm(x)[:, :real]).abs().max()))
    return out


def batchmate_test(gen: torch.Generator, device: str, trials: int = 20) -> dict[str, list[float]]:
    """Per norm, per batch size: max change of one fixed sequence's output over random batches."""
    seq = _acts(gen, 1, T, D)
    out: dict[str, list[float]] = {n: [] for n in NORMS}
    for bs in BATCH_SIZES:
        ys: dict[str, list[torch.Tensor]] = {n: [] for n in NORMS}
        for _ in range(trials):
            batch = torch.cat([seq, _acts(gen, bs - 1, T, D)]).to(device)
            for name, norm in NORMS.items():
                ys[name].append(norm(batch)[0])
        for name in NORMS:
            stacked = torch.stack(ys[name])
            out[name].append(float((stacked - stacked[0]).abs().max()))
    return out


def batch_mean_noise(gen: torch.Generator, draws: int = 200) -> dict[str, list[float]]:
    """Std over draws of BN's per-channel batch mean, for batch sizes x seq lengths."""
    tokens, noise = [], []
    for seq in (8, 32):
        for bs in (1, 2, 4, 8, 16):
            means = _acts(gen, draws, bs * seq, D).mean(1)  # (draws, D)
            tokens.append(bs * seq)
            noise.append(float(means.std(0).mean()))
    return {"tokens": tokens, "std_of_batch_mean": noise}


def causal_test(gen: torch.Generator, device: str) -> dict[str, float]:
    """Per norm: max change of the first half's output when the second half changes."""
    x = _acts(gen, B, T, D)
    x2 = x.clone()
    x2[:, T // 2 :] = _acts(gen, B, T - T // 2, D)
    x, x2 = x.to(device), x2.to(device)
    return {
        n: float((f(x2)[:, : T // 2] - f(x)[:, : T // 2]).abs().max()) for n, f in NORMS.items()
    }


def run(ctx: ProbeContext) -> Outcome:
    gen = torch.Generator().manual_seed(ctx.seed)
    pad = padding_test(gen, ctx.device)
    ctx.report("batchnorm padding", 0.25)
    mates = batchmate_test(gen, ctx.device, trials=10 if ctx.quick else 20)
    ctx.report("batchnorm batch-mates", 0.5)
    noise = batch_mean_noise(gen, draws=100 if ctx.quick else 200)
    ctx.report("batchnorm batch-mean noise", 0.75)
    leak = causal_test(gen, ctx.device)
    ctx.report("batchnorm causal leak", 1.0)

    changes = {
        n: {"padding": max(pad[n]["change"]), "batch-mates": max(mates[n]), "causal": leak[n]}
        for n in NORMS
    }
    verdict, reason = verdict_batchnorm(changes)
    numbers: dict[str, float | list | str] = {
        "pad_fractions": list(PAD_FRACTIONS),
        "batch_sizes": list(BATCH_SIZES),
        "batch_mean_tokens": noise["tokens"],
        "std_of_batch_mean/batchnorm": noise["std_of_batch_mean"],
    }
    for n in NORMS:
        numbers[f"real_token_mean/{n}"] = pad[n]["mean"]
        numbers[f"real_token_std/{n}"] = pad[n]["std"]
        numbers[f"padding_change/{n}"] = pad[n]["change"]
        numbers[f"batchmate_change/{n}"] = mates[n]
        numbers[f"causal_change/{n}"] = leak[n]
    i45 = PAD_FRACTIONS.index(0.45)
    summary = (
        f"BN output on real tokens at 45% padding: mean {fmt(pad['batchnorm']['mean'][i45], 2)}, "
        f"std {fmt(pad['batchnorm']['std'][i45], 3)} (LN {fmt(pad['layernorm']['mean'][i45], 2)}, "
        f"{fmt(pad['layernorm']['std'][i45], 3)}); batch-mate change BN "
        f"{'/'.join(fmt(v, 2) for v in mates['batchnorm'])} at batch {BATCH_SIZES} vs LN "
        f"{fmt(max(mates['layernorm']), 2)}; causal leak BN {fmt(leak['batchnorm'], 2)} vs LN "
        f"{fmt(leak['layernorm'], 2)}; {reason}"
    )
    return Outcome(verdict, numbers, THRESHOLD, CAVEAT, summary)
