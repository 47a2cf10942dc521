"""The one training loop the probes share: Adam on the Markov chain, optional warm-up and autocast.

Every run with the same seed sees the same batches (its own chain sampler), so runs that differ
only in lr, warm-up, dtype or norm are paired comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from normbench.suites.diagnose.data import MarkovChain
from normbench.suites.diagnose.model import ToyLM

DTYPES = ("fp32", "bf16", "fp16")
# Stop a run after this many non-finite losses in a row: the weights are gone, and on a CPU an
# fp16 step costs ~10x an fp32 one, so finishing it would only burn the time budget.
MAX_NONFINITE_IN_A_ROW = 5


@dataclass
class TrainLog:
    losses: list[float] = field(default_factory=list)
    nonfinite_steps: int = 0
    scaler_skips: int = 0
    peak_residual: float = 0.0
    stopped_early: bool = False

    def final_loss(self, window: int = 10) -> float:
        """Mean of the last `window` losses; NaN when the run ended non-finite."""
        tail = self.losses[-window:]
        if not tail or not all(math.isfinite(v) for v in tail) or self.stopped_early:
            return math.nan
        return sum(tail) / len(tail)


def _autocast(device: str, dtype: str):
    if dtype == "fp32":
        return torch.autocast(device_type=torch.device(device).type, enabled=False)
    low = torch.bfloat16 if dtype == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=low)


def train(
    model: ToyLM,
    *,
    steps: int,
    lr: float,
    seed: int = 0,
    stream: int = 0,
    warmup: int = 0,
    batch: int = 16,
    dtype: str = "fp32",
    device: str = "cpu",
    track_residual: bool = False,
    on_step: Callable[[int, float], None] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> TrainLog:
    """Train `model` in place for `steps` Adam steps and return the per-step losses and counters.

    `seed` picks the language, `stream` the batches: to resume a run, pass its optimizer and a new
    stream.
    fp16 uses a GradScaler (as mixed-precision recipes do); bf16 does not need one.
    Warm-up is linear from lr / warmup to lr over `warmup` steps, then constant.
    """
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: choose from {', '.join(DTYPES)}")
    chain = MarkovChain(vocab=model.cfg.vocab, seed=seed, stream=stream)
    opt = optimizer if optimizer is not None else torch.optim.Adam(model.parameters(), lr=lr)
    scaler = torch.amp.GradScaler(torch.device(device).type, enabled=dtype == "fp16")
    for block in model.blocks:
        block.track, block.peak = track_residual, 0.0
    log = TrainLog()
    in_a_row = 0
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup) if warmup else lr
        tokens = chain.sample(batch, model.cfg.seq, device)
        with _autocast(device, dtype):
            loss = model.loss(tokens)
        opt.zero_grad(set_to_none=True)
        scale_before = scaler.get_scale() if scaler.is_enabled() else 1.0
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if scaler.is_enabled() and scaler.get_scale() < scale_before:
            log.scaler_skips += 1  # the scaler found inf/NaN gradients and skipped this step
        value = float(loss.detach())
        log.losses.append(value)
        finite = math.isfinite(value)
        log.nonfinite_steps += not finite
        in_a_row = 0 if finite else in_a_row + 1
        if on_step is not None:
            on_step(step, value)
        if in_a_row >= MAX_NONFINITE_IN_A_ROW:
            log.stopped_early = True
            break
    if track_residual:
        log.peak_residual = max(block.peak for block in model.blocks)
        for block in model.blocks:
            block.track = False
    return log
