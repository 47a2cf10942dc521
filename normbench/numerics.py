"""Error measures against the fp64 oracle, and the tolerance rule (docs/numerics.md section 2).

Rule, from flash-attention's tests: elementwise
    |impl - ref64| <= 2 * |native_lowprec - ref64| + atol * scale + 1 ulp
where native_lowprec is the same formula computed in fp32 from the low-precision inputs and cast
once. A one-ulp difference is never a bug. `scale` is 1 for activations and max(1, max|ref|) for
parameter gradients, which are sums over every row and grow with M. And, except for parameter
gradients, where the norm-wise error is over twice native's, the systematic part of the error
(the scale error, `_scale`) within 2 unit roundoffs over native's own, doubled, and what chance
gives it across rows and columns (docs/numerics.md "The systematic error").
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from normbench.dtypes import ATOL

if TYPE_CHECKING:
    import torch

MANTISSA_BITS = {"fp32": 23, "fp16": 10, "bf16": 7, "fp64": 52}
MIN_EXPONENT = {"fp32": -126, "fp16": -14, "bf16": -126, "fp64": -1022}
MAX_EXPONENT = {"fp32": 127, "fp16": 15, "bf16": 127, "fp64": 1023}


def judged(out: torch.Tensor, ref: torch.Tensor, dtype: str) -> torch.Tensor:
    """Where `out` (fp64) is judged against the fp64 `ref`: where ref is finite, less where
    the exact value is beyond the dtype's range and `out` holds its correct rounding, an inf of
    the same sign (exact, not a non-finite error: a zero fp16 row at eps 1e-8 has
    dx = dy / sqrt(1e-8), up to 7e4)."""
    import torch

    finite = torch.isfinite(ref)
    if dtype in MAX_EXPONENT and dtype != "fp64":
        rounds_to_inf = (ref.abs() >= overflow_at(dtype)) & (out == torch.sign(ref) * math.inf)
        finite = finite & ~rounds_to_inf
    return finite


def overflow_at(dtype: str) -> float:
    """The smallest magnitude that rounds to inf in `dtype` (round to nearest: the largest
    finite number plus half its spacing; fp16 65520)."""
    top = 2.0 ** MAX_EXPONENT[dtype]
    return top * (2 - 2.0 ** -MANTISSA_BITS[dtype]) + top * 2.0 ** -(MANTISSA_BITS[dtype] + 1)


def ulp(values: torch.Tensor, dtype: str) -> torch.Tensor:
    """The spacing of `dtype` numbers at each value (subnormal spacing below the normal range)."""
    import torch

    v = values.abs().to(torch.float64)
    _, exp = torch.frexp(v)  # v = m * 2**exp, m in [0.5, 1)
    exp = torch.clamp(exp - 1, min=MIN_EXPONENT[dtype])
    return torch.pow(2.0, (exp - MANTISSA_BITS[dtype]).to(torch.float64))


@dataclass(frozen=True)
class TensorError:
    name: str
    max_abs: float
    rel: float  # ||impl - ref|| / ||ref|| over finite reference elements
    max_ulp: float
    nonfinite: int  # elements non-finite where the reference is finite
    silent_zero_rows: int  # rows all zero where the reference row is not
    worst_ratio: float  # max of error / bound: <= 1 passes the rule
    ok: bool
    # The systematic part of the error: the least-squares scale of impl against ref, less 1
    # (<impl - ref, ref> / <ref, ref>), and its ratio to its bound (`_scale`); the ratio is 0
    # where it is not judged (a parameter gradient, an error within twice native's).
    scale_error: float = 0.0
    scale_ratio: float = 0.0
    native_rel: float = 0.0  # the fp32 formula's norm-wise error on the same elements
    # The channels' own error (rms over the last dimension's channels, relative) and its ratio
    # to its bound (`_channel`); 0 where not judged or not beyond chance.
    channel_error: float = 0.0
    channel_ratio: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def compare(
    name: str,
    impl: torch.Tensor,
    ref: torch.Tensor,
    native: torch.Tensor | None,
    dtype: str,
    reduction: bool = False,
    mask: torch.Tensor | None = None,
) -> TensorError:
    """Measure `impl` against the fp64 `ref` under the tolerance rule. With `mask` (bool,
    broadcastable), only the elements where it is True are judged (stability judges the rows of a
    non-finite input by propagation instead)."""
    import torch

    out = impl.detach().to(torch.float64)
    ref = ref.detach().to(torch.float64)
    finite = judged(out, ref, dtype)
    if mask is not None:
        finite = finite & mask.to(finite.device)
    nonfinite = int((~torch.isfinite(out) & finite).sum())
    diff = torch.where(finite, (out - ref).abs(), torch.zeros_like(ref))
    diff = torch.nan_to_num(diff, nan=float("inf"))
    refz = torch.where(finite, ref, torch.zeros_like(ref))
    denom = float(refz.norm())
    rel = float(diff.norm()) / denom if denom > 0 else float(diff.norm())
    max_abs = float(diff.max()) if diff.numel() else 0.0
    u = ulp(refz, dtype)
    max_ulp = float((diff / u).max()) if diff.numel() else 0.0

    scale = max(1.0, float(refz.abs().max())) if (reduction and refz.numel()) else 1.0
    bound = ATOL[dtype] * scale + u
    native_rel = 0.0
    if native is not None:
        nat = torch.nan_to_num((native.detach().to(torch.float64) - ref).abs(), nan=0.0)
        nat = torch.where(finite, nat, torch.zeros_like(nat))
        bound = bound + 2 * nat
        nat_norm = float(torch.nan_to_num(nat, posinf=0.0).norm())
        native_rel = nat_norm / denom if denom > 0 else nat_norm

    worst = float((diff / bound).max()) if diff.numel() else 0.0

    scale_error = scale_ratio = channel_error = channel_ratio = 0.0
    if not reduction:
        scale_error, scale_ratio = _scale(out, ref, native, finite, dtype, rel, native_rel)
        if native is None or rel > 2 * native_rel:  # as for the scale: the cheap test first
            channel_error, channel_ratio = _channel(out, ref, native, finite, dtype)

    rows = 0
    if out.dim() >= 1 and out.numel():
        o2 = out.reshape(-1, out.shape[-1])
        r2 = refz.reshape(-1, ref.shape[-1])
        rows = int(((o2 == 0).all(-1) & (r2 != 0).any(-1)).sum())
    # Non-finite where the reference is non-finite is propagation, judged elsewhere; the rule here
    # covers finite reference elements only.
    ok = nonfinite == 0 and worst <= 1.0 and scale_ratio <= 1.0 and channel_ratio <= 1.0
    return TensorError(name, max_abs, rel, max_ulp, nonfinite, rows, worst, ok, scale_error,
                       scale_ratio, native_rel, channel_error, channel_ratio)  # fmt: skip


def unit_roundoff(dtype: str) -> float:
    """Half the spacing of `dtype` at 1: the largest relative error of one rounding."""
    return 2.0 ** -(MANTISSA_BITS[dtype] + 1)


def _masked(a: torch.Tensor, ref: torch.Tensor, keep: torch.Tensor) -> tuple:
    """(a - ref, ref) as rows of the last dimension, zero outside `keep` (and where a - ref is
    not finite)."""
    import torch

    n = ref.shape[-1] if ref.dim() else 1
    zero = torch.zeros_like(ref)
    d = torch.nan_to_num(torch.where(keep, a - ref, zero), nan=0.0, posinf=0.0, neginf=0.0)
    return d.reshape(-1, n), torch.where(keep, ref, zero).reshape(-1, n)


def _scale_of(d: torch.Tensor, r: torch.Tensor) -> float:
    """s = <d, r> / <r, r>: the least-squares scale error (0 where r is all zero)."""
    den = float((r * r).sum())
    return float((d * r).sum()) / den if den > 0 else 0.0


def _noise(d: torch.Tensor, r: torch.Tensor, s: float) -> float:
    """How far chance alone could take the scale error s of `d` against `r`. s is the weighted
    mean of the rows' own scale errors, and also of the columns' (the channels'); the noise is
    the larger of the two weighted means' standard errors, each times Student's t at 99% for
    its groups less one (inf with fewer than two groups that have a reference). A true scale
    error is shared by every row and every column; an error from one row's statistics, or one
    channel's (BatchNorm's are per channel), is not, and shows in that grouping's spread."""
    den = float((r * r).sum())
    if den <= 0:
        return math.inf
    noise = 0.0
    for axis in (-1, 0):  # rows, then columns
        den_g, num_g = (r * r).sum(axis), (d * r).sum(axis)
        used = den_g > 0
        groups = int(used.sum())
        if groups < 2:
            return math.inf
        w, s_g = den_g[used] / den, num_g[used] / den_g[used]
        se = float(((w * (s_g - s)) ** 2).sum() * groups / (groups - 1)) ** 0.5
        noise = max(noise, _t99(groups - 1) * se)
    return noise


@functools.cache
def _t99(df: int) -> float:
    """Student's t at 99% two-sided (63.7 for 1 degree of freedom, 5.84 for 3, 2.58 for many)."""
    from scipy.stats import t

    return float(t.ppf(0.995, df))


def _scale(out: torch.Tensor, ref: torch.Tensor, native: torch.Tensor | None,
           keep: torch.Tensor, dtype: str, rel: float,
           native_rel: float) -> tuple[float, float]:  # fmt: skip
    """(scale error, its ratio to the bound; 0 where it is not judged). A systematic error (a
    wrong factor, eps or divisor) is a scale every row and column shares, which the elementwise
    rule cannot see under its atol: bf16's 5e-2 let a kernel 1.5% wrong everywhere pass.
    Judged only where it could matter and be told from noise:
    - the norm-wise error is over twice the fp32 formula's (as for the elementwise excess: an
      implementation more accurate than careful fp32 code is not wrong, whatever its scale);
    - |s| over 2 unit roundoffs (what rounding reaches where one value dominates the norm,
      every row's outlier rounded alike), plus twice the fp32 formula's own s (careful fp32
      code drifts too: cancellation at a mean of 1e4), plus what chance could give it across
      rows and columns (`_noise`)."""
    import torch

    d, r = _masked(out, ref, keep)
    s = _scale_of(d, r)
    if native is not None and rel <= 2 * native_rel:
        return s, 0.0  # the cheap test first: most tensors end here
    native_s = 0.0
    if native is not None:
        native_s = _scale_of(_masked(native.detach().to(torch.float64), ref, keep)[0], r)
    noise = _noise(d, r, s)
    if not math.isfinite(noise):
        return s, 0.0
    bound = 2 * abs(native_s) + SCALE_ROUNDOFFS * unit_roundoff(dtype) + noise
    return s, abs(s) / bound


# How many unit roundoffs of systematic error rounding alone can make (see `_scale`).
SCALE_ROUNDOFFS = 2.0
# The per-channel error (rms over the channels, relative) judged against this many unit
# roundoffs: a channel's gain rounded to the dtype once (1 + w in bf16) is about 0.6.
CHANNEL_ROUNDOFFS = 0.25
# The F test's level for "the channels differ beyond chance" (one in a million A/A tensors).
CHANNEL_P = 1e-6


def _channel(out: torch.Tensor, ref: torch.Tensor, native: torch.Tensor | None,
             keep: torch.Tensor, dtype: str) -> tuple[float, float]:  # fmt: skip
    """(per-channel error, its ratio to the bound; 0 where not judged). A channel's own error is
    a factor every row of that channel shares and the others do not: Gemma's 1 + w formed in
    bf16 (docs/numerics.md trap 13), a weight rounded to bf16 that was to stay fp32. It has no
    common scale (the channels err both ways), and each element stays within an ulp or two,
    so neither the scale rule nor the elementwise one sees it. Judged where the channels'
    spread is beyond chance (`_channel_spread`'s F test at p < CHANNEL_P), against
    CHANNEL_ROUNDOFFS unit roundoffs plus twice the fp32 formula's own (which forms 1 + w in
    fp32: an fp32 kernel that does the same is no worse). A correct implementation rounds each
    element on its own: no channel differs."""
    import torch

    found = _channel_spread(out, ref, keep)
    if found is None:
        return 0.0, 0.0
    effect, fstat, df1, df2 = found
    from scipy.stats import f

    if fstat <= float(f.isf(CHANNEL_P, df1, df2)):
        return 0.0, 0.0
    own = 0.0
    if native is not None:
        nat = _channel_spread(native.detach().to(torch.float64), ref, keep)
        own = nat[0] if nat is not None else 0.0
    return effect, effect / (2 * own + CHANNEL_ROUNDOFFS * unit_roundoff(dtype))


def _channel_spread(out: torch.Tensor, ref: torch.Tensor,
                    keep: torch.Tensor) -> tuple[float, float, int, int] | None:  # fmt: skip
    """(rms of the channels' own relative error, F, its degrees of freedom), or None where there
    are too few rows or channels. On the relative errors of the elements at least half their
    row's RMS (below it the relative error means little), each row's mean removed (a row's
    statistics err as a whole): the spread of the channels' means against the spread within
    them."""
    import torch

    if ref.dim() < 2 or ref.shape[-1] < 2:
        return None
    n = ref.shape[-1]
    r = torch.where(keep, ref, torch.zeros_like(ref)).reshape(-1, n)
    o = out.reshape(-1, n)
    if r.shape[0] < 2:
        return None
    rms = r.pow(2).mean(-1, keepdim=True).sqrt()
    use = keep.reshape(-1, n) & (r.abs() >= 0.5 * rms) & (rms > 0) & torch.isfinite(o)
    zero = torch.zeros_like(r)
    e = torch.where(use, (o - r) / torch.where(use, r, torch.ones_like(r)), zero)
    e = torch.where(use, e - e.sum(-1, keepdim=True) / use.sum(-1, keepdim=True).clamp(min=1), zero)
    counts = use.sum(0).to(torch.float64)
    cols = counts > 0
    k, total = int(cols.sum()), float(counts.sum())
    # Each row's mean removed took one degree of freedom of the within-channel spread, as each
    # channel's mean did: (rows - 1)(channels - 1) in a full table.
    df2 = int(total) - k - int(use.any(-1).sum()) + 1
    if k < 2 or df2 < 2:
        return None
    col_mean = e.sum(0) / counts.clamp(min=1)
    within = float(torch.where(use, e - col_mean, zero).pow(2).sum()) / df2
    if within <= 0:
        return None
    means = col_mean[cols]
    grand = float((means * counts[cols]).sum()) / total
    between = float((counts[cols] * (means - grand) ** 2).sum()) / (k - 1)
    effect = math.sqrt(max(0.0, between - within) / (total / k))
    return effect, between / within, k - 1, df2
