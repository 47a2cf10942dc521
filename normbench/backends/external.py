"""Peers: other projects' fused norm kernels, used when importable and a GPU is present.
They are never emulated: without the package or a GPU they are listed as unavailable."""

from __future__ import annotations

import importlib

from normbench.backends.base import Backend
from normbench.variants.base import Semantics


class PeerBackend(Backend):
    module = ""
    devices = ("cuda",)

    def available(self) -> str | None:
        try:
            importlib.import_module(self.module)
        except Exception as exc:  # ImportError, or a CUDA extension failing to load
            return f"{self.module} is not importable ({type(exc).__name__}: {exc})".rstrip()
        import torch

        if not torch.cuda.is_available():
            return f"{self.name} needs a CUDA GPU and none is present"
        return None


class LigerBackend(PeerBackend):
    name = "liger"
    module = "liger_kernel"
    description = "Liger-Kernel's Triton RMSNorm/LayerNorm (linkedin/Liger-Kernel)"
    variants = ("layernorm", "rmsnorm")
    # Liger's default RMSNorm casting mode is "llama".
    semantics = {"rmsnorm": Semantics(cast="llama")}

    def build(self, variant, case):
        from liger_kernel.transformers.functional import liger_layer_norm, liger_rms_norm

        if variant.name == "rmsnorm":
            # in_place=False: Liger's in-place backward overwrites dy (Liger #370,
            # docs/numerics.md trap 11).
            return lambda x, weight, eps: liger_rms_norm(x, weight, eps, in_place=False)
        return lambda x, weight, bias, eps: liger_layer_norm(x, weight, bias, eps)


class ApexBackend(PeerBackend):
    name = "apex"
    module = "apex.normalization.fused_layer_norm"
    description = "NVIDIA Apex fused LayerNorm/RMSNorm CUDA kernels"
    variants = ("layernorm", "rmsnorm")
    semantics = {"rmsnorm": Semantics(cast="llama")}

    def build(self, variant, case):
        from apex.normalization.fused_layer_norm import (
            fused_layer_norm_affine,
            fused_rms_norm_affine,
        )

        if variant.name == "rmsnorm":
            return lambda x, weight, eps: fused_rms_norm_affine(x, weight, (x.shape[-1],), eps)
        return lambda x, weight, bias, eps: fused_layer_norm_affine(
            x, weight, bias, (x.shape[-1],), eps
        )


class QuackBackend(PeerBackend):
    name = "quack"
    module = "quack"
    description = "Dao-AILab QuACK CuTe-DSL RMSNorm (Hopper/Blackwell)"
    variants = ("rmsnorm",)

    def build(self, variant, case):
        from quack.rmsnorm import rmsnorm

        return lambda x, weight, eps: rmsnorm(x, weight, eps=eps)


PEERS = [LigerBackend(), ApexBackend(), QuackBackend()]
