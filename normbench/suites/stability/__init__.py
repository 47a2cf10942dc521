"""The stability suite: each implementation against the fp64 oracle on adversarial inputs.

Cases are variant x backend x dtype x input distribution x N, forward and backward. Each is
compared with the reference of the backend's declared semantics (eps, cast, residual), judged
PASS / WARN / FAIL with a reason in words (normbench.verdicts), checked for bitwise determinism,
and, with a sweep, scaled by 2^k to find the dynamic range where it stays PASS.

judge: one case judged (`evaluate`, `check_case`); sweep: the 2^k range sweep (`range_sweep`);
suite: the run, its typed results (normbench.results.stability) and findings (`run_stability`).
"""

from normbench.inputs import default_dists
from normbench.suites.stability.judge import (
    CPU_ROWS,
    SUITE,
    ImplementationError,
    arm_interpreter,
    check_case,
    evaluate,
    not_applicable,
    semantics_note,
    tainted_rows,
)
from normbench.suites.stability.result import case_result
from normbench.suites.stability.suite import (
    StabilityCase,
    describe_case,
    exit_code,
    failed,
    findings,
    run_stability,
    run_verdict,
    worst_per_implementation,
)
from normbench.suites.stability.sweep import (
    DEFAULT_SWEEP,
    SWEEP_DIST,
    DynamicRange,
    SweepPoint,
    range_sweep,
    safe_run,
    sweep_case,
    sweep_cases,
    sweep_results,
)

__all__ = [
    "CPU_ROWS", "DEFAULT_SWEEP", "SUITE", "SWEEP_DIST", "DynamicRange", "ImplementationError",
    "StabilityCase", "SweepPoint", "arm_interpreter", "case_result", "check_case",
    "default_dists", "describe_case", "evaluate", "exit_code", "failed", "findings",
    "not_applicable", "range_sweep", "run_stability", "run_verdict", "safe_run",
    "semantics_note", "sweep_case", "sweep_cases", "sweep_results", "tainted_rows",
    "worst_per_implementation",
]  # fmt: skip
