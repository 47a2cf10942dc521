"""PyTorch's own fused functional ops."""

from __future__ import annotations

import torch.nn.functional as F

from normbench.backends.base import Backend
from normbench.backends.composite import dyt
from normbench.variants.base import Semantics
from normbench.variants.groupnorm import num_groups

# ATen's norms compute in fp32 and cast once; an unfused residual add rounds the sum first.
EAGER = Semantics(eps="inside", cast="fp32", residual="rounded")


def layernorm(x, weight, bias, eps):
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def rmsnorm(x, weight, eps):
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def batchnorm(x, weight, bias, eps):
    flat = x.reshape(-1, x.shape[-1])
    return F.batch_norm(flat, None, None, weight, bias, training=True, eps=eps).reshape(x.shape)


def groupnorm(x, weight, bias, eps):
    n = x.shape[-1]
    return F.group_norm(x.reshape(-1, n), num_groups(n), weight, bias, eps).reshape(x.shape)


def instancenorm(x, weight, bias, eps):
    # F.instance_norm wants channels first: (batch, dim, seq).
    return F.instance_norm(x.transpose(1, 2), weight=weight, bias=bias, eps=eps).transpose(1, 2)


def add_layernorm(x, residual, weight, bias, eps):
    s = x + residual
    return layernorm(s, weight, bias, eps), s


def add_rmsnorm(x, residual, weight, eps):
    s = x + residual
    return rmsnorm(s, weight, eps), s


FUNCTIONS = {
    "layernorm": layernorm,
    "rmsnorm": rmsnorm,
    "batchnorm": batchnorm,
    "groupnorm": groupnorm,
    "instancenorm": instancenorm,
    "dyt": dyt,
    "add_layernorm": add_layernorm,
    "add_rmsnorm": add_rmsnorm,
}


class EagerBackend(Backend):
    name = "eager"
    description = "PyTorch's fused functional ops (F.layer_norm, F.rms_norm, F.batch_norm, ...)"
    variants = tuple(FUNCTIONS)
    default_semantics = EAGER
    # F.layer_norm / F.rms_norm take weight=None and a weight of another dtype (output in x's).
    options = ("affine", "weight_dtype")

    def build(self, variant, case):
        return FUNCTIONS[variant.name]
