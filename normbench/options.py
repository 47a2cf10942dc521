"""Per-case layer options: what a model's norm layer holds beyond its variant and dtype.

These are the options Liger-Kernel and QuACK users rely on: no weight (elementwise_affine=False),
a bias on RMSNorm, the weight's dtype apart from x's, and the residual stream's dtype apart from
x's. The fifth, QK-norm's per-head weight (H, D), is part of the shape (`Shape.heads`): x is
(batch, seq, heads, dim) and the weight (heads, dim). Each changes the tensors a case is made
of, so the fp64 oracle follows it; a backend says which it takes (`Backend.options`), and every
other backend skips such a case with the reason. Options that do not apply to a variant are dropped
for it (a residual dtype means nothing to plain RMSNorm), so one selection can mix variants.

In a case id the options follow the mode: `add_rmsnorm/triton/bf16/4x512x4096/fwd/w=fp32,res=fp32`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from normbench.dtypes import canonical, itemsize
from normbench.errors import UsageError

if TYPE_CHECKING:
    from normbench.cases import Case
    from normbench.variants import Variant

# The row norms the options apply to (their kernels take them all).
ROW_NORMS = ("rmsnorm", "layernorm", "add_rmsnorm", "add_layernorm")
OPTION_NAMES = ("affine", "weight_dtype", "bias", "residual_dtype")
# What a backend declares it takes (`Backend.options`): the options above, and "heads" for a
# per-head weight (a shape with heads > 1).
TAKES = (*OPTION_NAMES, "heads")


@dataclass(frozen=True)
class NormOptions:
    """The defaults are the plain layer: a weight (and LayerNorm's bias) in x's dtype, one per
    channel, the residual in x's dtype."""

    affine: bool = True  # False: no weight and no bias (elementwise_affine=False)
    weight_dtype: str | None = None  # None: x's dtype
    bias: bool = False  # a bias on RMSNorm (LayerNorm has one already)
    residual_dtype: str | None = None  # None: x's dtype

    def __post_init__(self) -> None:
        if self.weight_dtype is not None:
            object.__setattr__(self, "weight_dtype", canonical(self.weight_dtype))
        if self.residual_dtype is not None:
            object.__setattr__(self, "residual_dtype", canonical(self.residual_dtype))
        if not self.affine and (self.weight_dtype or self.bias):
            raise UsageError(
                "--no-weight leaves no weight or bias: it cannot be combined with "
                "--weight-dtype or --rms-bias"
            )

    def non_default(self) -> tuple[str, ...]:
        """Names of the options set away from the plain layer."""
        return tuple(f for f in OPTION_NAMES if getattr(self, f) != getattr(NormOptions(), f))

    def for_case(self, variant: str, dtype: str) -> NormOptions:
        """These options with the ones a `variant` case in `dtype` has no use for dropped: every
        option belongs to the row norms; a residual dtype to add + norm; a bias option to
        RMSNorm; a weight or residual dtype equal to x's is the plain layer."""
        if variant not in ROW_NORMS:
            return NormOptions()
        out = self
        if not variant.startswith("add_") or out.residual_dtype == dtype:
            out = replace(out, residual_dtype=None)
        if variant.endswith("layernorm"):
            out = replace(out, bias=False)
        if out.weight_dtype == dtype:
            out = replace(out, weight_dtype=None)
        return out

    def suffix(self) -> str:
        """The case-id part: '' for the defaults, else e.g. 'w=fp32,res=fp32,bias,heads'."""
        parts = []
        if not self.affine:
            parts.append("no-weight")
        if self.weight_dtype:
            parts.append(f"w={self.weight_dtype}")
        if self.bias:
            parts.append("bias")
        if self.residual_dtype:
            parts.append(f"res={self.residual_dtype}")
        return ",".join(parts)

    def describe_one(self, name: str) -> str:
        """One option of TAKES in words, for a backend's refusal."""
        return {
            "affine": "no weight (elementwise_affine=False)",
            "weight_dtype": f"{_an(self.weight_dtype)} {self.weight_dtype} weight",
            "bias": "a bias on RMSNorm",
            "residual_dtype": f"{_an(self.residual_dtype)} {self.residual_dtype} residual",
            "heads": "a per-head weight (QK-norm)",
        }[name]

    def param_dtype(self, x_dtype: str) -> str:
        return self.weight_dtype or x_dtype

    def res_dtype(self, x_dtype: str) -> str:
        return self.residual_dtype or x_dtype

    def tensor_args(self, variant: Variant) -> tuple[str, ...]:
        """The variant's arguments with these options: RMSNorm with a bias takes `bias` too."""
        args = variant.tensor_args
        if self.bias and "bias" not in args:
            args = (*args, "bias")
        return args

    def param_args(self, variant: Variant) -> tuple[str, ...]:
        """The parameters a case of `variant` holds: without affine, neither weight nor bias."""
        names = tuple(a for a in self.tensor_args(variant) if a not in variant.activations)
        return names if self.affine else tuple(n for n in names if n not in ("weight", "bias"))

    def dtypes(self, variant: Variant, x_dtype: str) -> dict[str, str]:
        """Dtype name of every argument, output and gradient of a case."""
        out = {}
        for name in self.tensor_args(variant):
            if name in variant.activations:
                out[name] = self.res_dtype(x_dtype) if name == "residual" else x_dtype
            else:
                out[name] = self.param_dtype(x_dtype) if name in ("weight", "bias") else x_dtype
        for name in variant.outputs:
            out[name] = self.res_dtype(x_dtype) if name == "residual_out" else x_dtype
        for name in self.tensor_args(variant):
            out["d" + name] = out[name]
        return out


def _an(dtype: str | None) -> str:
    return "an" if dtype and dtype.startswith("f") else "a"  # an fp32, a bf16


def check_options(options: NormOptions, variants: tuple[str, ...], heads: tuple[int, ...]) -> None:
    """Refuse options (and --heads) that apply to none of the selected variants, with the
    sentence the CLI prints."""
    rows = [v for v in variants if v in ROW_NORMS]
    adds = [v for v in variants if v.startswith("add_")]
    rms = [v for v in variants if v.endswith("rmsnorm")]
    need = (
        ("affine", not options.affine, rows, "--no-weight", "rmsnorm, layernorm and their add_"),
        ("weight_dtype", options.weight_dtype, rows, "--weight-dtype",
         "rmsnorm, layernorm and their add_"),
        ("bias", options.bias, rms, "--rms-bias", "rmsnorm, add_rmsnorm"),
        ("heads", max(heads) > 1, rows, "--heads", "rmsnorm, layernorm and their add_"),
        ("residual_dtype", options.residual_dtype, adds, "--residual-dtype",
         "add_rmsnorm, add_layernorm"),
    )  # fmt: skip
    for _, wanted, fits, flag, which in need:
        if wanted and not fits:
            raise UsageError(f"{flag} applies to {which}; none of the selected variants takes it")


def ideal_bytes(variant: Variant, case: Case) -> int:
    """The variant's ideal device-memory bytes for `case`, each tensor at its own width: the
    parameters in their dtype (none without a weight), an RMSNorm bias read (fwd) and its
    gradient written (bwd), and for add + norm the residual, its output and their gradients
    in the residual's dtype (bwd writes dx and the residual's gradient apart when the dtypes
    differ). Per-head parameters count H x N elements."""
    o, shape, mode = case.options, case.shape, case.mode
    b = itemsize(case.dtype)
    bw = itemsize(o.param_dtype(case.dtype)) if o.affine else 0
    nbytes = variant.ideal_bytes(shape, b, bw, mode)
    # Parameter rows the variant's model does not count: a weight is read (fwd), read and its
    # gradient written (bwd); a bias read (fwd), its gradient written (bwd).
    passes = {"weight": {"fwd": 1, "bwd": 2}, "bias": {"fwd": 1, "bwd": 1}}
    per_row = {
        k: v["fwd"] * (mode != "bwd") + v["bwd"] * (mode != "fwd") for k, v in passes.items()
    }
    extra_rows = shape.heads - 1  # the model above counts one parameter row
    for name in ("weight", "bias"):
        if name in variant.tensor_args:
            nbytes += per_row[name] * extra_rows * shape.dim * bw
    if o.bias and "bias" not in variant.tensor_args:
        nbytes += per_row["bias"] * shape.heads * shape.dim * bw
    if "residual" in variant.activations:
        br = itemsize(o.res_dtype(case.dtype))
        el = shape.rows * shape.dim
        fwd = 2 * (br - b) * el  # read r, write the residual output
        bwd = 2 * (br - b) * el + (br * el if br != b else 0)  # read s, d(res out); write dres
        nbytes += {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd + bwd}[mode]
    return nbytes
