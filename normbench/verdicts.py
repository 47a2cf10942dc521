"""Stability verdicts: one tensor, then one case, judged against the fp64 oracle in words.

PASS: every element within the tolerance rule of docs/numerics.md section 2 (numerics.compare), no
non-finite value where fp64 is finite, no silently zero row, and every row whose input holds an
inf or NaN comes out non-finite (docs/numerics.md section 1: never a finite-looking row of zeros).
Also PASS: an elementwise excess of at most WARN_RATIO whose norm-wise error is within twice the
fp32 formula's ("native"): the elementwise rule compares with native's error at each element, which
is sometimes exactly 0, so a few ulps over it in a long reduction is rounding, not a defect.
WARN: the rule is exceeded by at most WARN_RATIO and the norm-wise error is also more than twice
native's (marginal), a systematic error (numerics.compare's scale error) up to SCALE_WARN_RATIO
times its bound, or two runs differ bitwise.
FAIL: anything worse. The reason names what broke, prefixed by the input's trap ("fp16 square
overflows at |x| >= 256: rows silently zero").

Errors in ulps (`ulp_error`) count in the spacing of the output dtype at the reference value, or
at the tensor's RMS where the reference is smaller: counted in ulps of a value near zero (where a
sum cancels), a harmless absolute error would read as millions of ulps.

Rows of a non-finite input are judged by propagation only: a finite value where fp64 has
inf/NaN is a lost propagation (FAIL); a NaN where fp64 happens to be finite (the +inf RMSNorm row
is 0 * x except at the inf) is allowed, as is a parameter gradient that turns non-finite.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from normbench.dtypes import ATOL
from normbench.numerics import TensorError, compare, judged, ulp

if TYPE_CHECKING:
    import torch

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
VERDICTS = (PASS, WARN, FAIL)
RANK = {PASS: 0, WARN: 1, FAIL: 2}
# Up to this multiple of the tolerance an error is marginal (WARN); beyond it, FAIL.
WARN_RATIO = 4.0
# The same for a systematic error (numerics.compare's scale error): beyond 2x its bound, which
# is already 2 unit roundoffs over the fp32 formula's own, no rounding explains it.
SCALE_WARN_RATIO = 2.0


def worst(verdicts: Iterable[str]) -> str:
    return max(verdicts, key=RANK.__getitem__, default=PASS)


@dataclass(frozen=True)
class TensorCheck:
    """One output or gradient: the error measures and what they mean."""

    name: str
    error: TensorError
    tainted_rows: int = 0  # rows whose input holds inf/NaN (judged by propagation)
    lost_rows: int = 0  # of those, rows non-finite in fp64 that came out all finite
    lost_zero_rows: int = 0  # ... and all zero
    lost_elements: int = 0  # parameter gradients: elements non-finite in fp64, finite here
    verdict: str = PASS
    symptom: str = ""
    max_ulp: float = 0.0  # ulp_error: output ulps at the reference value (at least its RMS)
    native_rel: float = 0.0  # the fp32 formula's norm-wise error on the same elements

    @property
    def lost(self) -> int:
        return self.lost_rows + self.lost_elements

    def measures(self) -> dict[str, float]:
        """The tidy metrics of this tensor (metric name suffix -> value)."""
        e = self.error
        return {
            "max_abs": e.max_abs,
            "rel": e.rel,
            "max_ulp": self.max_ulp,
            "tol_ratio": e.worst_ratio,
            "scale_error": e.scale_error,
            "channel_error": e.channel_error,
            "nonfinite": e.nonfinite,
            "silent_zero_rows": e.silent_zero_rows,
            "lost_propagation": self.lost,
        }


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, t.shape[-1]) if t.dim() else t.reshape(1, 1)


def ulp_error(
    impl: torch.Tensor, ref: torch.Tensor, dtype: str, floor: float | None = None
) -> torch.Tensor:
    """|impl - ref| in ulps of `dtype` at max(|ref|, floor), per element; inf where impl is not
    finite and ref is. `floor` defaults to the RMS of the finite reference (atol if that is 0)."""
    import torch

    out, ref = impl.detach().to(torch.float64), ref.detach().to(torch.float64)
    if floor is None:
        finite = ref[torch.isfinite(ref)]
        floor = float(finite.pow(2).mean().sqrt()) if finite.numel() else 0.0
    floor = floor or ATOL[dtype]
    diff = torch.nan_to_num((out - ref).abs(), nan=float("inf"))
    return diff / ulp(torch.clamp(ref.abs(), min=floor), dtype)


def check_tensor(
    name: str,
    impl: torch.Tensor,
    ref: torch.Tensor,
    native: torch.Tensor | None,
    dtype: str,
    *,
    param: bool = False,
    tainted: torch.Tensor | None = None,
) -> TensorCheck:
    """Judge one tensor. `tainted`: bool per row of the activations, True where the input row
    holds an inf or NaN (None or all False: a finite input). `param`: a parameter gradient, a sum
    over every row (tolerance scaled by its magnitude; tainted as a whole by any tainted row)."""
    import torch

    out = impl.detach().to(torch.float64)
    ref64 = ref.detach().to(torch.float64)
    any_tainted = tainted is not None and bool(tainted.any())
    mask = None
    lost_rows = lost_zero = lost_el = rows_t = 0
    if any_tainted and param:
        # Over-propagation into a parameter gradient is allowed; losing an inf/NaN is not.
        mask = torch.isfinite(out)
        lost_el = int((~torch.isfinite(ref64) & torch.isfinite(out)).sum())
    elif any_tainted:
        assert tainted is not None
        o2, r2 = _rows(out), _rows(ref64)
        t = tainted.reshape(-1).to(o2.device)
        rows_t = int(t.sum())
        ref_nf = (~torch.isfinite(r2)).any(-1)
        out_finite = torch.isfinite(o2).all(-1)
        lost = t & ref_nf & out_finite
        lost_rows = int(lost.sum())
        lost_zero = int((lost & (o2 == 0).all(-1)).sum())
        mask = (~t).reshape(*out.shape[:-1], 1)
    err = compare(name, out, ref64, native, dtype, reduction=param, mask=mask)
    finite = judged(out, ref64, dtype)  # as compare() judged it
    keep = finite if mask is None else finite & mask
    kept = ref64[keep]
    floor = float(kept.pow(2).mean().sqrt()) if kept.numel() else 0.0
    ulps = torch.where(keep, ulp_error(out, ref64, dtype, floor), 0.0)
    max_ulp = float(ulps.max()) if ulps.numel() else 0.0
    nat_rel = err.native_rel
    verdict, symptom = _judge(
        name, err, rows_t, lost_rows, lost_zero, lost_el, _rows(out).shape[0], max_ulp, nat_rel
    )
    return TensorCheck(
        name, err, rows_t, lost_rows, lost_zero, lost_el, verdict, symptom, max_ulp, nat_rel
    )


def _judge(
    name: str,
    e: TensorError,
    tainted: int,
    lost: int,
    lost_zero: int,
    lost_el: int,
    rows: int,
    max_ulp: float,
    native_rel: float,
) -> tuple[str, str]:
    if e.silent_zero_rows:
        judged = rows - tainted
        return FAIL, f"rows silently zero ({e.silent_zero_rows} of {judged} rows of {name})"
    if lost:
        how = "as finite zeros" if lost_zero == lost else "finite"
        return FAIL, f"{lost} of {tainted} rows of {name} come out {how} (inf/NaN must propagate)"
    if lost_el:
        return FAIL, f"{name} lost the inf/NaN in {lost_el} elements (finite where fp64 is not)"
    if e.nonfinite:
        return FAIL, f"{name} has {e.nonfinite} non-finite values where fp64 is finite"
    detail = f"{max_ulp:.3g} ulp at output scale, rel {e.rel:.1e}"
    if e.worst_ratio > WARN_RATIO:
        return FAIL, f"{name} error {e.worst_ratio:.3g}x the tolerance ({detail})"
    if e.scale_ratio > 1.0:
        return _systematic(f"{name} is {100 * e.scale_error:+.2g}% off throughout",
                           e.scale_ratio, detail)  # fmt: skip
    if e.channel_ratio > 1.0:  # each channel off by a factor of its own (1 + w in bf16)
        return _systematic(f"{name} is off per channel by {100 * e.channel_error:.2g}% rms",
                           e.channel_ratio, detail)  # fmt: skip
    if e.worst_ratio > 1.0 and e.rel > 2 * native_rel:
        return WARN, (
            f"{name} error {e.worst_ratio:.3g}x the tolerance, marginal ({detail}; "
            f"fp32 formula rel {native_rel:.1e})"
        )
    if e.worst_ratio > 1.0:
        return PASS, (
            f"{name} elementwise up to {e.worst_ratio:.2g}x the bound, norm error within 2x "
            "the fp32 formula's"
        )
    return PASS, ""


def _systematic(off: str, ratio: float, detail: str) -> tuple[str, str]:
    """A systematic error (a common scale, or one per channel) `ratio` times its bound:
    marginal up to SCALE_WARN_RATIO, then FAIL."""
    why = f"{ratio:.3g}x the bound for rounding"
    if ratio > SCALE_WARN_RATIO:
        return FAIL, f"{off} ({why}; {detail})"
    return WARN, f"{off}, marginal ({why}; {detail})"


@dataclass(frozen=True)
class CaseVerdict:
    """A whole case: every tensor, determinism and the declared-semantics note."""

    verdict: str
    reason: str
    checks: tuple[TensorCheck, ...] = ()
    deterministic: bool | None = None
    semantics_note: str = ""
    semantic_ratio: float | None = None  # y's distance from the contract reference / tolerance

    @property
    def worst_check(self) -> TensorCheck | None:
        return max(self.checks, key=lambda c: (RANK[c.verdict], c.error.worst_ratio), default=None)


def combine(
    checks: Iterable[TensorCheck],
    trap: str = "",
    nondeterministic: Iterable[str] = (),
    deterministic: bool | None = None,
    semantics_note: str = "",
) -> CaseVerdict:
    """The case verdict: the worst tensor's, with its reason; a bitwise difference between two
    runs is at least a WARN (docs/numerics.md trap 10: atomics make dW nondeterministic)."""
    checks = tuple(checks)
    differs = tuple(nondeterministic)
    bad = max(checks, key=lambda c: (RANK[c.verdict], c.error.worst_ratio), default=None)
    verdict = bad.verdict if bad else PASS
    if bad is not None and verdict != PASS:
        reason = f"{trap}: {bad.symptom}" if trap else bad.symptom
    elif differs:
        verdict = WARN
        reason = f"two runs differ bitwise in {', '.join(differs)} (nondeterministic)"
    elif bad is not None and bad.symptom:
        reason = bad.symptom
    elif bad is not None:
        reason = f"within tolerance (worst {bad.name} at {bad.error.worst_ratio:.2g}x the bound)"
    else:
        reason = "nothing to compare"
    if differs and verdict != PASS and "bitwise" not in reason:
        reason += f"; two runs differ bitwise in {', '.join(differs)}"
    return CaseVerdict(verdict, reason, checks, deterministic, semantics_note)


def failed_result(reason: str) -> CaseVerdict:
    """A case whose outputs cannot be compared at all (wrong shape or dtype, modified input)."""
    return CaseVerdict(FAIL, reason)
