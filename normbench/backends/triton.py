"""The project's own fused Triton kernels (normbench/kernels). Without a CUDA device they run in
Triton's interpreter: right numbers, meaningless times, so they are never timed there."""

from __future__ import annotations

from normbench.backends.base import Backend
from normbench.options import TAKES
from normbench.variants.base import Semantics

# Statistics in fp32, eps inside the sqrt, one cast at the end; with a residual, the norm of the
# residual output as stored (docs/numerics.md section 9).
FUSED = Semantics(eps="inside", cast="fp32", residual="rounded")


class TritonBackend(Backend):
    name = "triton"
    description = "normbench's fused Triton kernels (one pass, fp32 statistics, deterministic bwd)"
    variants = ("layernorm", "rmsnorm", "add_layernorm", "add_rmsnorm")
    default_semantics = FUSED
    options = TAKES  # every layer option, each gated against the fp64 oracle
    offset = 0.0  # Gemma's (1 + w): 1.0
    cast = "fp32"  # "llama": x_hat rounded to x's dtype before the weight

    def available(self) -> str | None:
        try:
            from normbench import kernels
        except ImportError as exc:
            return f"the Triton kernels cannot be imported ({exc})"
        ok, reason = kernels.available()
        return None if ok else reason

    def supports(self, case):
        from normbench import kernels

        reason = super().supports(case)
        if reason and case.device_type == "cuda" and kernels.interpreted():
            # The interpreter was asked for on a GPU machine: say so first, since unsetting
            # TRITON_INTERPRET (not this reason's own fix) is what the user wants.
            return f"TRITON_INTERPRET is set, so the kernels would run in its interpreter: {reason}"
        if reason:
            return reason

        # Interpreter or compiler is chosen once per process (normbench.kernels): with a GPU
        # present they are compiled, and compiled kernels refuse CPU tensors.
        if case.device_type != "cuda" and not kernels.interpreted():
            return (
                "the Triton kernels are compiled for CUDA in this process (a GPU is present): "
                "set TRITON_INTERPRET=1 to run them on CPU in Triton's interpreter"
            )
        return None

    def timing_blocker(self, device: str) -> str | None:
        from normbench import kernels

        if not device.startswith("cuda"):
            return "runs in Triton's interpreter on CPU: numerics only, never timed"
        if kernels.interpreted():
            return (
                "runs in Triton's interpreter (TRITON_INTERPRET is set): numerics only, never "
                "timed; unset TRITON_INTERPRET to time the compiled kernels"
            )
        return None

    def build(self, variant, case):
        from normbench import kernels
        from normbench.dtypes import to_torch

        res = case.options.residual_dtype
        res_dtype = None if res is None else to_torch(res)
        offset, cast = self.offset, self.cast
        if variant.name == "rmsnorm":
            return lambda x, weight, eps, bias=None: kernels.rms_norm(
                x, weight, eps, None, offset, bias=bias, cast=cast
            )
        if variant.name == "add_rmsnorm":
            return lambda x, residual, weight, eps, bias=None: kernels.rms_norm(
                x, weight, eps, residual, offset, bias=bias, residual_dtype=res_dtype, cast=cast
            )
        if variant.name == "layernorm":
            return lambda x, weight, bias, eps: kernels.layer_norm(x, weight, bias, eps)
        return lambda x, residual, weight, bias, eps: kernels.layer_norm(
            x, weight, bias, eps, residual, residual_dtype=res_dtype
        )


class TritonLlamaBackend(TritonBackend):
    """Liger's casting_mode="llama" (Hugging Face's LlamaRMSNorm): x_hat is rounded to x's dtype
    before the weight multiply. Liger's "gemma" mode is `triton-gemma`; its "none" (everything
    in the input dtype) is not offered: it only loses precision against `triton`, and squares
    fp16 inputs in fp16 (docs/numerics.md trap 1)."""

    name = "triton-llama"
    description = "normbench's fused Triton RMSNorm, Llama cast: x_hat rounded to x's dtype, then w"
    variants = ("rmsnorm", "add_rmsnorm")
    default_semantics = Semantics(eps="inside", cast="llama", residual="rounded")
    cast = "llama"
