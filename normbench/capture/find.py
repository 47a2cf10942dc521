"""Which modules of a model are normalization layers, and what each computes
(docs/capture.md "Which layers are captured" and "What each layer records").

Found: every torch.nn.LayerNorm and torch.nn.RMSNorm over the last dimension, and every module
whose class name ends in "RMSNorm" or "LayerNorm" (any case: Hugging Face's LlamaRMSNorm,
GemmaRMSNorm, T5LayerNorm, ...) with a 1-D weight, or none, and its eps in an attribute named
`variance_epsilon`, `eps` or `epsilon`. A norm's children are not searched.

What a model-code norm computes is read from its own output on the batch: each candidate
formula (RMSNorm applying w, RMSNorm with x_hat rounded to x's dtype before w, Gemma's
RMSNorm applying 1 + w, LayerNorm with either rounding) is evaluated in fp64 from the captured
input and rounded to the output's dtype; the one matching the most output elements bitwise
wins (ties: the smaller error, then the order above), provided its norm-wise relative error is
under MATCH_REL. torch's own modules compute in fp32 and round once (cast fp32).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

NAME_RE = re.compile(r"(rmsnorm|layernorm)$", re.IGNORECASE)
EPS_ATTRS = ("variance_epsilon", "eps", "epsilon")
# A candidate formula explains a module's output when its norm-wise relative error is below
# this: bf16 rounding alone gives about 3e-3, while the wrong variant or weight convention
# is off by O(1) (w against 1 + w, a mean of 0.1 against none).
MATCH_REL = 0.02
CANDIDATES = (("rmsnorm", "fp32"), ("rmsnorm", "llama"), ("rmsnorm", "gemma"),
              ("layernorm", "fp32"), ("layernorm", "llama"))  # fmt: skip


@dataclass(frozen=True)
class Found:
    """A norm module: its path, how it was found, and the variant when its type says so."""

    name: str
    module: Any
    found_by: str
    variant: str | None  # None: decided from its output (a model-code norm)

    @property
    def class_name(self) -> str:
        cls = type(self.module)
        if cls.__module__.startswith("torch.nn"):
            return f"torch.nn.{cls.__name__}"
        return cls.__name__


def _kind(module: Any) -> tuple[str, str | None] | None:
    import torch

    if isinstance(module, torch.nn.LayerNorm):
        return "torch.nn.LayerNorm", "layernorm"
    rms = getattr(torch.nn, "RMSNorm", None)
    if rms is not None and isinstance(module, rms):
        return "torch.nn.RMSNorm", "rmsnorm"
    if NAME_RE.search(type(module).__name__):
        return f"class name {type(module).__name__}", None
    return None


def find_norms(model: Any) -> list[Found]:
    """The model's norm modules in module order; a module shared by several paths is found once
    (under its first path), and a norm's children are not searched."""
    root = _kind(model)
    if root is not None:  # the model is itself a norm
        return [Found("(model)", model, *root)]
    out: list[Found] = []
    for name, module in model.named_modules():
        if any(name.startswith(f.name + ".") for f in out):
            continue
        kind = _kind(module)
        if kind is not None:
            out.append(Found(name, module, *kind))
    return out


def eps_of(found: Found, x: torch.Tensor) -> float | None:
    """The module's eps: torch's attribute (torch.nn.RMSNorm's None is torch.finfo(x).eps, as
    torch documents), else the first number among EPS_ATTRS."""
    import torch

    m = found.module
    if found.variant == "rmsnorm" and getattr(m, "eps", 0) is None:
        return float(torch.finfo(x.dtype).eps)
    for attr in EPS_ATTRS:
        v = getattr(m, attr, None)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def parameters(found: Found, dim: int) -> tuple[Any, Any, str | None]:
    """(weight, bias, why not) for a norm over a last dimension of `dim`: a weight and bias of
    shape (dim,) or none; anything else is a reason the layer is not captured."""
    import torch

    m = found.module
    shape = getattr(m, "normalized_shape", None)
    if shape is not None and tuple(shape) != (dim,):
        return None, None, (f"normalizes over {tuple(shape)}; normbench's row norms take the "
                            "last dimension only")  # fmt: skip
    w, b = getattr(m, "weight", None), getattr(m, "bias", None)
    for name, t in (("weight", w), ("bias", b)):
        if t is not None and not isinstance(t, torch.Tensor):
            return None, None, f"its {name} is a {type(t).__name__}, not a tensor"
        if t is not None and tuple(t.shape) != (dim,):
            return None, None, f"its {name} has shape {tuple(t.shape)}, not ({dim},)"
    if w is None and b is not None:
        return None, None, "it has a bias but no weight"
    return w, b, None


def _candidate(variant: str, cast: str, x, w, b, eps: float, out_dtype) -> torch.Tensor:
    import torch

    from normbench.variants import Semantics, get_variant

    v = get_variant(variant)
    t = {"x": x.double(), "weight": None if w is None else w.double(),
         "bias": None if b is None else b.double()}  # fmt: skip
    with torch.no_grad():
        (y,) = v.formula(t, {"eps": eps}, Semantics(cast=cast), x.dtype)
    return y.to(out_dtype)


def semantics(found: Found, x, w, b, eps: float, y) -> tuple[str, str] | str:
    """(variant, cast) the module computes, or why none of the candidates explains its output.
    torch's modules are (their variant, fp32); a model-code norm is read from its output."""
    import torch

    if found.variant is not None:
        return found.variant, "fp32"
    keep = torch.isfinite(x).all(-1) & torch.isfinite(y).all(-1)
    xs, ys = x[keep], y[keep]
    if xs.numel() == 0:
        return "every row of its input or output is non-finite"
    scores = []
    low = x.dtype in (torch.float16, torch.bfloat16)
    for i, (variant, cast) in enumerate(CANDIDATES):
        if cast == "llama" and not low:
            continue  # rounding x_hat to fp32 is the fp32 formula
        if variant == "rmsnorm" and b is not None:
            continue  # an RMSNorm with a bias is not among the model-code forms
        if cast == "gemma" and w is None:
            continue
        cand = _candidate(variant, cast, xs, w, b, eps, ys.dtype)
        mismatch = int((cand != ys).sum())
        diff = float((cand.double() - ys.double()).norm())
        rel = diff / max(float(ys.double().norm()), 1e-30)
        scores.append((mismatch, rel, i))
    mismatch, rel, i = min(scores)
    if rel > MATCH_REL:
        return (f"its output matches no LayerNorm or RMSNorm form (closest: "
                f"{'/'.join(CANDIDATES[i])}, relative error {rel:.2g})")  # fmt: skip
    return CANDIDATES[i]
