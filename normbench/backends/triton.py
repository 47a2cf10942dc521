"""The project's own fused Triton kernels (normbench/kernels). Without a CUDA device they run in
Triton's interpreter: right numbers, meaningless times, so they are never timed there."""

from __future__ import annotations

from normbench.backends.base import Backend
from normbench.variants.base import Semantics

# Statistics and the residual sum in fp32, eps inside the sqrt, one cast at the end
# (NUMERICS.md section 1).
FUSED = Semantics(eps="inside", cast="fp32", residual="fp32")


class TritonBackend(Backend):
    name = "triton"
    description = "normbench's fused Triton kernels (one pass, fp32 statistics, deterministic bwd)"
    variants = ("layernorm", "rmsnorm", "add_layernorm", "add_rmsnorm")
    default_semantics = FUSED

    def available(self) -> str | None:
        try:
            from normbench import kernels
        except ImportError as exc:
            return f"the Triton kernels cannot be imported ({exc})"
        ok, reason = kernels.available()
        return None if ok else reason

    def timing_blocker(self, device: str) -> str | None:
        if device.startswith("cuda"):
            return None
        return "runs in Triton's interpreter on CPU: numerics only, never timed"

    def build(self, variant, case):
        from normbench import kernels

        if variant.name == "rmsnorm":
            return lambda x, weight, eps: kernels.rms_norm(x, weight, eps)
        if variant.name == "layernorm":
            return lambda x, weight, bias, eps: kernels.layer_norm(x, weight, bias, eps)
        if variant.name == "add_rmsnorm":
            return lambda x, residual, weight, eps: kernels.rms_norm(x, weight, eps, residual)
        return lambda x, residual, weight, bias, eps: kernels.layer_norm(
            x, weight, bias, eps, residual
        )
