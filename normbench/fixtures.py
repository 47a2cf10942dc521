"""Backends made slower on purpose, to measure what the regression gate detects.

`slowed_backend(0.15)` is eager, then eager's work again on a slice of the rows, so it returns
the same outputs (it passes the correctness gate) and takes about 15% longer. How much to repeat:

- on CPU, by time: after eager's call, the first 1/64 of the rows is normalized again and again
  while a whole slice still fits in 15% of that call's own duration, and the remainder (shorter
  than one slice) is waited out on the clock. Repeating a fixed 15% of the rows does not
  give 15% on a CPU: a slice that fits in cache costs a fraction of its share of a full call
  that streams from memory and faults in a fresh output (measured here: the 5% slice of a
  4x512x1024 LayerNorm cost 1.4% of the call). Tied to the call's own time, each call is
  1 + fraction times itself, noise included, so the true ratio of medians is 1 + fraction.
- on CUDA (asynchronous, so host time means nothing), eager again on `fraction` of the rows:
  a memory-bound kernel's time is close to proportional to the rows it streams.

Only the forward is repeated: use `--mode fwd` with these.

As a plugin: `--plugin normbench.fixtures` adds `eager_slow15` and `eager_slow5`, e.g.
`normbench ab --a eager --b eager_slow15 --plugin normbench.fixtures --mode fwd`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from normbench.backends.base import FunctionBackend, backend_from_functions

SLICE = 1 / 64  # the part of the rows repeated on CPU, small enough for a fine time granularity


def _rows(kw: dict[str, Any], fraction: float) -> dict[str, Any]:
    """The arguments with every activation (3-D tensor) cut to its first `fraction` of rows;
    parameters pass whole. The cut is a contiguous view: no copy."""
    import torch

    part = {}
    for k, v in kw.items():
        if isinstance(v, torch.Tensor) and v.dim() == 3:
            rows = v.reshape(1, -1, v.shape[-1])
            part[k] = rows[:, : max(1, round(fraction * rows.shape[1]))]
        else:
            part[k] = v
    return part


def slowed(fn: Callable[..., Any], fraction: float) -> Callable[..., Any]:
    """fn, then part of fn's work again (results discarded) for `fraction` of its time."""
    import torch

    last_step = [0.0]  # the cost of one slice call, from the calls before: never overshoot

    @functools.wraps(fn)
    def run(**kw: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(**kw)
        spent = time.perf_counter() - t0
        cuda = any(isinstance(v, torch.Tensor) and v.is_cuda for v in kw.values())
        with torch.no_grad():
            if cuda:
                fn(**_rows(kw, fraction))
                return out
            deadline = t0 + spent * (1 + fraction)
            now = time.perf_counter()
            if now + last_step[0] < deadline:
                part = _rows(kw, SLICE)
                while now + last_step[0] < deadline:  # whole slices while one more still fits
                    fn(**part)
                    last_step[0], now = time.perf_counter() - now, time.perf_counter()
            while time.perf_counter() < deadline:  # the remainder, shorter than one slice
                pass
        return out

    return run


def slowed_backend(fraction: float, name: str | None = None) -> FunctionBackend:
    from normbench.backends.eager import EAGER, FUNCTIONS

    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    name = name or f"eager_slow{round(fraction * 100)}"
    return backend_from_functions(
        name,
        {v: slowed(f, fraction) for v, f in FUNCTIONS.items()},
        description=f"eager, plus eager's forward again on {fraction:.0%} of the rows "
        "(a deliberately slower fixture for the regression gate)",
        semantics=dict.fromkeys(FUNCTIONS, EAGER),
    )


def register_slowed(fraction: float, name: str | None = None) -> str:
    """Register (once) and return the name of the slowed backend."""
    from normbench.registry import backends, register_backend

    backend = slowed_backend(fraction, name)
    if backend.name not in backends():
        register_backend(backend, origin="normbench.fixtures")
    return backend.name


BACKENDS = [slowed_backend(0.15), slowed_backend(0.05)]
