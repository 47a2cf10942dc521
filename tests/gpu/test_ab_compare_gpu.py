"""ab and compare on CUDA: an interleaved A/B of two backends, an A/A that finds nothing, a
compiled side never recompiling inside a timed block, and two speed runs compared."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from gpu_helpers import selection

import normbench.suites.ab as ab
from normbench.compare import CompareConfig, compare_runs
from normbench.compare_summary import exit_code
from normbench.config import SpeedConfig
from normbench.config_args import SelectionArgs, TimingArgs
from normbench.results.compare import CaseComparison, Verdict
from normbench.suites.ab_sides import build_ab_config
from normbench.suites.speed import run_speed
from tests.ab_spy import graphs_in_first_block

pytestmark = pytest.mark.gpu
ARGS = SelectionArgs(variant=["rmsnorm"], dim=["4096"], batch=["8"], seq=["2048"],
                     mode=["fwd"], dtype=["bf16"], device="cuda")  # fmt: skip
TIMING = TimingArgs(quick=True, time_budget=0.2)


def ratios(result) -> list[CaseComparison]:
    return result.comparison.of(CaseComparison)


def test_ab_of_two_backends_on_cuda(tmp_path):
    result = ab.run_ab(build_ab_config("eager", "triton", ARGS, TIMING, Path(tmp_path), ()))
    (c,) = ratios(result)
    assert c.ratio.ok and 0.2 < c.ratio.value < 5, c.note
    assert c.base_n >= 8 and c.new_n >= 8  # at least min_rounds blocks per side
    assert all(r.timer.startswith("cuda") for r in result.a.results + result.b.results)


@pytest.mark.parametrize("backend", ["triton", "compile"])
def test_an_a_a_comparison_finds_no_change(backend, monkeypatch, tmp_path):
    # compile vs compile in one process: side B's build resets torch.compile; side A must not
    # recompile inside its first timed block (normbench.suites.ab.rewarm_after_resets).
    graphs = graphs_in_first_block(monkeypatch)
    result = ab.run_ab(build_ab_config(backend, backend, ARGS, TIMING, Path(tmp_path), ()))
    (c,) = ratios(result)
    assert graphs == [0, 0]
    assert c.verdict in (Verdict.SAME, Verdict.INCONCLUSIVE), (c.verdict, c.ratio.value)
    assert c.ratio.value == pytest.approx(1.0, abs=0.05)


def test_compare_two_cuda_speed_runs(tmp_path):
    sel = selection(("rmsnorm", "layernorm"), ("triton",), ("bf16",), (2048, 8192))
    config = SpeedConfig(sel, threads=1, time_budget=0.3, quick=True, out=tmp_path)
    base, new = run_speed(config), run_speed(config)
    assert base.env["device_name"] == torch.cuda.get_device_name()
    cmp = compare_runs(base, new, CompareConfig())
    cases = cmp.of(CaseComparison)
    assert len(cases) == 4 and not any(c.verdict is Verdict.REGRESSION for c in cases)
    assert exit_code(cmp) in (0, 4)  # 4 only when a side was timed on a busy machine
