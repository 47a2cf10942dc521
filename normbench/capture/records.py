"""What a capture holds: per normalization layer that ran, its input, parameters, output and
(with --grads) the gradient at its output, with what the layer implies (docs/capture.md
"What each layer records")."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from normbench.variants import Shape

FORMAT = "normbench-capture"  # the metadata's "format": what makes a safetensors file ours
VERSION = 1
RESIDUAL = ("pre", "post", "final", "unknown")


def is_eps(v: object) -> bool:
    """A layer's eps as a model has one: a finite number, 0 or more (a negative one is no norm,
    and NaN turns every output NaN, which then matched a NaN reference)."""
    from normbench.results.files import finite_number

    eps = finite_number(v)
    return eps is not None and eps >= 0


# The loss --grads differentiates (docs/capture.md "Gradients"): dy at the model's first
# floating output is that output itself, O(1) like the activations, so no cast to fp16 or bf16
# flushes it to zero.
LOSS = "0.5 * sum(out ** 2) of the model's first floating output, in fp32"


def dtype_name(dtype: torch.dtype) -> str:
    """torch.float32 -> 'fp32' (fp16, bf16, fp64 likewise); other dtypes by torch's name."""
    import torch

    names = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16",
             torch.float64: "fp64"}  # fmt: skip
    return names.get(dtype, str(dtype).replace("torch.", ""))


def torch_dtype(name: str) -> torch.dtype:
    """The inverse of dtype_name for the names a capture file may carry."""
    import torch

    from normbench.dtypes import to_torch

    if name in ("fp32", "fp16", "bf16", "fp64"):
        return to_torch(name)
    return getattr(torch, name)


@dataclass(frozen=True)
class LayerMeta:
    """One norm call: where it sits and the semantics it implies.

    `variant` rmsnorm or layernorm; `cast` as normbench.variants.Semantics ("fp32", "llama":
    x_hat rounded to x's dtype before the weight, "gemma": y = x_hat * (1 + w)); `residual`
    where the residual add sits (pre: the stream bypasses the norm, post: the norm takes the
    residual sum, final: the last norm of a Pre-LN stack, unknown)."""

    index: int
    name: str  # the module's path; "#k" marks the k-th call of a module called more than once
    module: str  # its class, e.g. torch.nn.LayerNorm or LlamaRMSNorm
    found_by: str  # the rule that found it (docs/capture.md "Which layers are captured")
    variant: str
    eps: float
    cast: str
    residual: str
    shape: tuple[int, ...]  # x's shape
    dtype: str  # x's dtype name
    weight_dtype: str | None = None  # None: no weight
    bias: bool = False
    grad: bool = False  # dy recorded
    note: str = ""  # what else a reader should know (a dy of 0: the output never reaches the loss)

    @property
    def dim(self) -> int:
        return self.shape[-1]

    @property
    def rows(self) -> int:
        return math.prod(self.shape[:-1])

    @property
    def gemma(self) -> bool:
        return self.cast == "gemma"

    @property
    def norm(self) -> str:
        """The variant with its weight convention, for tables: 'rmsnorm (1 + w)'."""
        return f"{self.variant} (1 + w)" if self.gemma else self.variant

    def case_shape(self) -> Shape:
        """x's shape as a case shape: (batch, seq, N) as captured, anything else rows x N."""
        from normbench.variants import Shape

        if len(self.shape) == 3:
            return Shape(*self.shape)
        return Shape(1, self.rows, self.dim)

    def to_dict(self) -> dict:
        return {
            "index": self.index, "name": self.name, "module": self.module,
            "found_by": self.found_by, "variant": self.variant, "eps": self.eps,
            "cast": self.cast, "residual": self.residual, "shape": list(self.shape),
            "dtype": self.dtype, "weight_dtype": self.weight_dtype, "bias": self.bias,
            "grad": self.grad, "note": self.note,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> LayerMeta:
        return cls(
            index=int(d["index"]), name=str(d["name"]), module=str(d["module"]),
            found_by=str(d.get("found_by", "")), variant=str(d["variant"]), eps=float(d["eps"]),
            cast=str(d["cast"]), residual=str(d["residual"]),
            shape=tuple(int(n) for n in d["shape"]), dtype=str(d["dtype"]),
            weight_dtype=d.get("weight_dtype"), bias=bool(d.get("bias")),
            grad=bool(d.get("grad")), note=str(d.get("note", "")),
        )  # fmt: skip


@dataclass(frozen=True)
class CapturedLayer:
    """A layer's metadata and tensors, on the CPU in the dtypes the model computed them in."""

    meta: LayerMeta
    x: torch.Tensor
    y: torch.Tensor  # the module's own output
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    dy: torch.Tensor | None = None

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensors by their file key suffix ("x", "y", "weight", "bias", "dy")."""
        named = {"x": self.x, "y": self.y, "weight": self.weight, "bias": self.bias, "dy": self.dy}
        return {k: v for k, v in named.items() if v is not None}


@dataclass(frozen=True)
class Capture:
    """A model's norm layers on one batch. `complete` False: the forward (or backward) failed
    at `error`, and `layers` are the calls that finished before it. `ignored`: norms found but
    not captured, each with the reason."""

    model: str
    batch: str
    layers: tuple[CapturedLayer, ...] = ()
    loss: str | None = None  # LOSS with --grads
    complete: bool = True
    error: str | None = None
    ignored: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)  # torch version, device, the model's dtype

    @property
    def metas(self) -> tuple[LayerMeta, ...]:
        return tuple(layer.meta for layer in self.layers)

    def header(self) -> dict:
        """The JSON the file carries in its metadata (docs/capture.md "The file")."""
        return {
            "format": FORMAT, "version": VERSION, "model": self.model, "batch": self.batch,
            "loss": self.loss, "complete": self.complete, "error": self.error,
            "ignored": list(self.ignored), "extra": self.extra,
            "layers": [m.to_dict() for m in self.metas],
        }  # fmt: skip


@dataclass(frozen=True)
class CaptureMeta:
    """A capture file's header without its tensors (what `speed --shapes-from` needs)."""

    path: str
    model: str
    batch: str
    layers: tuple[LayerMeta, ...]
    loss: str | None = None
    complete: bool = True
    error: str | None = None
    ignored: tuple[str, ...] = ()
