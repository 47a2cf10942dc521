"""The memory suite's result: what a case saves for backward and its peaks, against the ideal.

The measurements are `saved_bytes`, `saved_param_bytes`, `peak_fwd_bytes`, `peak_bytes` and the
ideal of each (`ideal_saved_bytes`, `ideal_peak_fwd_bytes`, `ideal_peak_bytes`); the fields
below break the saved bytes down. `speed --memory` adds the same measurements and fields to its
speed cases, so both suites share `MemoryFields`."""

from __future__ import annotations

from dataclasses import dataclass, fields

from normbench.results.model import CaseResult, result_kind

IDEAL_OF = {"saved_bytes": "ideal_saved_bytes", "peak_fwd_bytes": "ideal_peak_fwd_bytes",
            "peak_bytes": "ideal_peak_bytes"}  # fmt: skip


@dataclass(frozen=True)
class MemoryFields(CaseResult):
    """The breakdown of what one forward saved (None where not measured)."""

    saved_input_bytes: int | None = None  # the part of saved_bytes that is an input itself
    saved_tensors: int | None = None  # saved tensor references, duplicates included
    saved_storages: int | None = None  # distinct storages among them (parameters included)
    after_fwd_bytes: int | None = None  # net bytes still held after the training forward

    def ideal(self, metric: str) -> float | None:
        """The ideal of a memory metric (saved_bytes, peak_fwd_bytes, peak_bytes)."""
        name = IDEAL_OF.get(metric)
        return self.value(name) if name else None

    def ratio(self, metric: str) -> float | None:
        """Measured / ideal, for an ok measurement with a nonzero ideal."""
        m, ideal = self.get(metric), self.ideal(metric)
        if m is None or not m.ok or not ideal:
            return None
        return m.value / ideal

    def memory_fields(self) -> dict[str, int | None]:
        """These fields by name (to join a memory result to a speed case)."""
        return {f.name: getattr(self, f.name) for f in fields(MemoryFields)
                if f.name in MEMORY_FIELDS}  # fmt: skip


MEMORY_FIELDS = ("saved_input_bytes", "saved_tensors", "saved_storages", "after_fwd_bytes")


@result_kind("memory")
@dataclass(frozen=True)
class MemoryResult(MemoryFields):
    """One case of the memory suite; its first measurement is `saved_bytes`."""
