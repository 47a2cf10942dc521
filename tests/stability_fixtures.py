"""A deliberately broken RMSNorm, kept as a fixture for the stability suite's tests.

It squares in the input dtype and only then upcasts: `(x * x).float()`, the pattern of
pytorch issue #133085. In fp16 any |x| >= 256 squares to inf, rstd becomes 0 and the whole row
comes out silently zero (docs/numerics.md trap 1). Usable as a plugin too:
`normbench stability --fp16 --plugin tests/stability_fixtures.py --backend fp16_square`.
"""

from __future__ import annotations

from normbench.backends.base import backend_from_functions

NAME = "fp16_square"


def rmsnorm(x, weight, eps):
    import torch

    ms = (x * x).float().mean(-1, keepdim=True)  # the bug: x * x in fp16 overflows at 256
    return (x.float() * torch.rsqrt(ms + eps) * weight.float()).to(x.dtype)


def broken_backend():
    return backend_from_functions(
        NAME,
        {"rmsnorm": rmsnorm},
        description="RMSNorm that squares before upcasting (pytorch #133085): a broken fixture",
    )


BACKENDS = [broken_backend()]
