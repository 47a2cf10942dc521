"""Peers: other projects' fused norm kernels, used when importable and a GPU is present.
They are never emulated: without the package or a GPU they are listed as unavailable."""

from __future__ import annotations

import importlib

from normbench.backends.base import Backend
from normbench.variants.base import Semantics


class PeerBackend(Backend):
    module = ""
    devices = ("cuda",)
    min_arch: tuple[int, int] | None = None  # the oldest compute capability its kernels run on

    def supports(self, case):
        # On an older GPU its kernels would fail to compile inside the case: an error row per
        # case, instead of one reason.
        why = super().supports(case)
        if why or self.min_arch is None:
            return why
        return arch_blocker(self.name, case.device, self.min_arch)

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
    min_arch = (9, 0)  # its CuTe-DSL kernels target sm_90 and newer

    def build(self, variant, case):
        from quack.rmsnorm import rmsnorm

        return lambda x, weight, eps: rmsnorm(x, weight, eps=eps)


class FlashInferBackend(PeerBackend):
    name = "flashinfer"
    module = "flashinfer"
    description = "FlashInfer's fused RMSNorm CUDA kernel (forward only; flashinfer-python)"
    variants = ("rmsnorm",)
    modes = ("fwd",)  # an inference kernel: no autograd
    # fp32 statistics, eps inside the square root, x * rstd * w in fp32, one rounding at the end.
    default_semantics = Semantics(eps="inside", cast="fp32")

    def build(self, variant, case):
        from flashinfer.norm import rmsnorm

        # It takes (rows, hidden) (and in newer releases (rows, heads, hidden)): rows flattened.
        return lambda x, weight, eps: rmsnorm(x.reshape(-1, x.shape[-1]), weight, eps).view(x.shape)


def arch_blocker(name: str, device: str, need: tuple[int, int]) -> str | None:
    """'unavailable: needs sm_90 or newer (...)' when CUDA `device` is older than `need`."""
    if not device.startswith("cuda"):
        return None
    import torch

    from normbench.machine_cuda import cuda_index

    index = cuda_index(device)
    have = tuple(torch.cuda.get_device_capability(index))
    if have >= need:
        return None
    gpu = torch.cuda.get_device_name(index)
    return (
        f"{name} unavailable: needs sm_{need[0]}{need[1]} or newer ({gpu} is sm_{have[0]}{have[1]})"
    )


PEERS = [LigerBackend(), ApexBackend(), QuackBackend(), FlashInferBackend()]
