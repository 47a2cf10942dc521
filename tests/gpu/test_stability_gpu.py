"""stability of the compiled kernels: every variant, dtype and launch-table entry (a small
unaligned tile, the 2048 / 4096 / 8192 tiles, the looped kernels) against the fp64 oracle, on
inputs that break the usual mistakes. The compiled kernels are what users run; in the CPU suite
Triton's interpreter only stands in for them."""

from __future__ import annotations

import pytest
from gpu_helpers import selection

from normbench import kernels
from normbench.config import StabilityConfig
from normbench.results.stability import StabilityResult, Verdict
from normbench.suites.stability import run_stability

pytestmark = pytest.mark.gpu
VARIANTS = ("rmsnorm", "layernorm", "add_rmsnorm", "add_layernorm")
DTYPES = ("fp32", "fp16", "bf16")
# One N per launch-table entry (normbench.kernels.launch): 1000 (a small tile, rows 16-byte
# aligned but N no multiple of 16), 2048, 4096, 8192 (one row per program in registers), 16384
# (looped, column chunks).
DIMS = (1000, 2048, 4096, 8192, 16384)
DISTS = ("normal", "offset", "massive", "zero")


def test_compiled_kernels_pass_every_case():
    assert not kernels.interpreted() and kernels.available()[1].startswith("compiled on")
    sel = selection(VARIANTS, ("triton",), DTYPES, DIMS, rows=(1, 1024), modes=("fwd+bwd",))
    run = run_stability(StabilityConfig(sel, DISTS, formats=()))
    cases = run.of(StabilityResult)
    assert len(cases) == len(VARIANTS) * len(DTYPES) * len(DIMS) * len(DISTS)
    bad = [(r.case_id, r.verdict, r.reason) for r in cases if r.verdict is not Verdict.PASS]
    assert not bad, bad
    # Deterministic: two runs bitwise identical (checked on the first distribution).
    checked = [r for r in cases if r.dist == DISTS[0]]
    assert checked and all(r.deterministic is True for r in checked)
