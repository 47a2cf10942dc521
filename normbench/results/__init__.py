"""Typed results (normbench.results.model), their one boundary to tidy rows and the run file
(normbench.results.files). Importing the package registers every result kind, so a saved run
of any suite reads back as its types."""

from normbench.results import audit, capture, compare, diagnose, memory, speed, stability  # noqa: F401
from normbench.results.files import dumps, load_run, tidy_rows, to_frame
from normbench.results.model import (
    KINDS,
    SCHEMA_VERSION,
    STATUSES,
    CaseResult,
    Finding,
    GenericCase,
    Level,
    Measurement,
    Result,
    Run,
    Status,
    UnknownResult,
    result_kind,
)
from normbench.results.writing import atomic_write_text, write_run_files

__all__ = [
    "KINDS", "SCHEMA_VERSION", "STATUSES", "CaseResult", "Finding", "GenericCase", "Level",
    "Measurement", "Result", "Run", "Status", "UnknownResult", "atomic_write_text", "dumps",
    "load_run", "result_kind", "tidy_rows", "to_frame", "write_run_files",
]  # fmt: skip
