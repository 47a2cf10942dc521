"""A Case is one measurement: variant x backend x dtype x shape x mode on a device."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from normbench.errors import UsageError
from normbench.options import ROW_NORMS, NormOptions
from normbench.variants.base import Shape


@dataclass(frozen=True)
class Case:
    variant: str
    backend: str
    dtype: str
    shape: Shape
    mode: str
    device: str = "cpu"
    dist: str = "normal"
    options: NormOptions = NormOptions()

    @property
    def id(self) -> str:
        """Stable id used for --filter, joins and baselines: rmsnorm/triton/bf16/8x1024x4096/fwd,
        then the input distribution and the layer options when not the defaults."""
        base = f"{self.variant}/{self.backend}/{self.dtype}/{self.shape}/{self.mode}"
        base = base if self.dist == "normal" else f"{base}/{self.dist}"
        suffix = self.options.suffix()
        return f"{base}/{suffix}" if suffix else base

    @property
    def group(self) -> str:
        """The id without the backend: cases that should be compared with each other."""
        return self.id.replace(f"/{self.backend}/", "/", 1)

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]


def expand(
    variants: list[str],
    backends: list[str],
    dtypes: list[str],
    shapes: list[Shape],
    modes: list[str],
    device: str,
    dists: tuple[str, ...] = ("normal",),
    pattern: str | None = None,
    options: NormOptions = NormOptions(),
) -> list[Case]:
    """The sweep, ordered so that each backend's rows for one shape sit together. Options a
    variant has no use for are dropped for it, and heads (QK-norm shapes) kept for the row
    norms only."""
    cases = [
        Case(v, b, dt, shape, mode, device, dist, options.for_case(v, dt))
        for v, dt, shape, mode, dist, b in itertools.product(
            variants, dtypes, shapes, modes, dists, backends
        )
        if shape.heads == 1 or v in ROW_NORMS
    ]
    return filter_cases(list(dict.fromkeys(cases)), pattern)


def filter_cases(cases: list[Case], pattern: str | None) -> list[Case]:
    """The cases whose id --filter's regular expression `pattern` matches (all without one)."""
    if not pattern:
        return cases
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"--filter {pattern!r} is not a valid regular expression: {exc}") from None
    return [c for c in cases if regex.search(c.id)]
