"""Reading schema-version-1 files: one flat row per metric, with the suite's own fields in an
`extra` dict and the shape as a string. Each row becomes a version-2 tidy row: the extra fields
become columns, the shape becomes numbers, and the row gets the kind its suite writes now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from normbench.results.model import KINDS

# suite -> row -> kind, for suites whose rows are not all of the suite's own kind.
KIND_OF: dict[str, Callable[[dict[str, Any]], str]] = {}
# Per-metric extras of version-1 memory rows (the measurements carry them now).
PER_METRIC = ("ideal_bytes", "ratio", "phase")
# extra keys renamed since version 1: {old: new}.
RENAMED = {
    "device_label": "device", "input_bytes": "saved_input_bytes", "tensors": "saved_tensors",
    "storages": "saved_storages",
}  # fmt: skip


def v1_kind(suite: str) -> Callable[[Callable[[dict[str, Any]], str]], Callable]:
    """Register how a suite's version-1 rows map to kinds (its result module does)."""

    def deco(fn: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], str]:
        KIND_OF[suite] = fn
        return fn

    return deco


def shape_numbers(shape: Any) -> dict[str, int | None]:
    """'4x512x1024' -> batch 4, seq 512, heads 1, dim 1024; 'BxSxHxD' with heads."""
    parts = str(shape or "").split("x")
    if len(parts) not in (3, 4) or not all(p.isdigit() for p in parts):
        return {}
    nums = [int(p) for p in parts]
    batch, seq, dim = nums[0], nums[1], nums[-1]
    return {"batch": batch, "seq": seq, "heads": nums[2] if len(nums) == 4 else 1, "dim": dim}


def row(suite: str, r: Any) -> dict[str, Any]:
    if not isinstance(r, dict):
        raise TypeError("a row is not an object")
    extra = r.get("extra") or {}
    if not isinstance(extra, dict):
        raise TypeError(f"row {r.get('case_id')!r}: 'extra' is not an object")
    out = {k: v for k, v in r.items() if k != "extra"}
    if suite == "speed" and r.get("metric") != "time":
        # speed --memory: a memory row's extra held that metric's ideal, ratio and phase, which
        # the measurements now carry; the case's own ideal_bytes is the time row's.
        extra = {k: v for k, v in extra.items() if k not in PER_METRIC}
    for k, v in extra.items():
        out.setdefault(RENAMED.get(k, k), v)
    out.update(shape_numbers(out.get("shape")) if "batch" not in out else {})
    kind_of = KIND_OF.get(suite)
    out["kind"] = kind_of(out) if kind_of else (suite if suite in KINDS else "case")
    return out
