"""The audit suite's result: one Triton kernel configuration compiled ahead of time, as read from
its cubin and PTX (normbench.suites.audit; docs/numerics.md sections 5 and 8).

Tidy rows, as in version 1: one per configuration and metric (registers, spill, shared memory,
load and store width, occupancy) with the kernel as the case (variant: its family, mode: fwd or
bwd, shape: N=<dim>); the record's own fields are columns of each row, so `from_rows` reads it
back from any of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from normbench.results.model import Finding, Result, Status, plain, result_kind

METRICS = (
    ("registers", "regs/thread"),
    ("spill_bytes", "B/thread"),
    ("shared_bytes", "B/block"),
    ("load_width_bytes", "B"),
    ("store_width_bytes", "B"),
    ("occupancy_pct", "%"),
)


# A kernel's name: the variant it serves, the pass, then its layer options ("add_rmsnorm_bwd_res32":
# add_rmsnorm, bwd, res32). bwd_reduce before bwd, so the reduction is not read as bwd + options.
KERNEL_NAME = re.compile(r"^((?:add_)?(?:rmsnorm|layernorm))_(fwd|bwd_reduce|bwd)(?:_(.+))?$")


def kernel_parts(kernel: str) -> tuple[str, str, str]:
    """(variant, mode, options) of a kernel's name, the tidy columns of its rows; a name of
    another shape keeps it whole as the variant."""
    m = KERNEL_NAME.match(kernel)
    return (m[1], m[2], m[3] or "") if m else (kernel, "", "")


@result_kind("audit")
@dataclass(frozen=True)
class AuditRow(Result):
    """A configuration that failed to compile has status ERROR, the reason in `note` and zeros
    for every number."""

    kernel: str  # e.g. "rmsnorm_fwd", "add_layernorm_bwd", "rmsnorm_bwd_reduce"
    arch: str
    dtype: str
    # The hidden size N. Named `dim` (version 1: `n`) because `dim` is the hidden size in every
    # tidy row while `n` is a sample count there.
    dim: int
    block: int = 0
    num_warps: int = 0
    registers: int = 0  # per thread
    spill_bytes: int = 0  # per thread: stack frame + local memory (our kernels have no other use)
    shared_bytes: int = 0  # per block: Triton's dynamic allocation + the cubin's static shared
    load_width_bytes: int = 0  # narrowest global load of the main (M x N or partial) tensors
    store_width_bytes: int = 0  # narrowest global store of the main tensors
    vector16: bool = False  # every main-tensor load and store is 16 bytes wide
    occupancy_warps: int = 0  # resident warps per SM
    occupancy_pct: float = 0.0  # of the SM's 64 warp slots
    status: Status = Status.OK
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))

    @classmethod
    def of(cls, kernel: str, arch: str, dtype: str, dim: int, **numbers: Any) -> AuditRow:
        """A configuration's result, with its case id (e.g. 'rmsnorm_fwd/sm_90/bf16/N=4096')."""
        case_id = f"{kernel}/{arch}/{dtype}/N={dim}"
        return cls(case_id, kernel=kernel, arch=arch, dtype=dtype, dim=dim, **numbers)

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def to_rows(self) -> list[dict[str, Any]]:
        variant, mode, options = kernel_parts(self.kernel)
        record = {f.name: plain(getattr(self, f.name)) for f in fields(self)}
        head = {
            "kind": self.kind, "variant": variant, "options": options, "backend": "triton",
            "shape": f"N={self.dim}", "mode": mode, **record,
        }  # fmt: skip
        return [
            {**head, "metric": metric, "unit": unit,
             "value": float(getattr(self, metric)) if self.ok else None}
            for metric, unit in METRICS
        ]  # fmt: skip

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> AuditRow:
        # Version 1: the record is the row with the extra fields (the `registers` row).
        row = dict(next((r for r in rows if r.get("kernel") is not None), rows[0]))
        if row.get("dim") is None:
            # Version 1 kept N in `extra["n"]`, which the row's own `n` (a sample count, null)
            # shadows when the extra fields become columns; its shape is "N=<dim>".
            row["dim"] = int(str(row.get("shape", "")).removeprefix("N="))
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})


def spilled(results: Sequence[AuditRow]) -> list[AuditRow]:
    """The configurations that spill registers (what --fail-on-spill fails on)."""
    return [r for r in results if r.ok and r.spill_bytes]


def summary(results: Sequence[AuditRow]) -> Finding:
    """'38 configurations: 0 spill, 2 not 16-byte wide, 0 failed to compile.'"""
    errors = sum(1 for r in results if not r.ok)
    narrow = sum(1 for r in results if r.ok and not r.vector16)
    return Finding(
        f"{len(results)} configurations: {len(spilled(results))} spill, {narrow} not 16-byte "
        f"wide, {errors} failed to compile."
    )
