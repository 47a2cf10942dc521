"""The oldest Triton the kernels are checked on is 3.3 (docs/performance.md, "The oldest
releases tried"): Triton 3.0's interpreter refuses them ("arange's arguments must be of type
tl.constexpr"), 3.2's compiler API cannot build them for the audit ("Constants keys must be
string"). Below it the triton backend is unavailable with that reason, every kernel call says it
and the audit gives it on every row, instead of failing inside Triton."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

import normbench.kernels as kernels
from normbench.cli import app
from normbench.kernels import triton_problem
from normbench.kernels.aot import KERNELS
from normbench.registry import get_backend
from normbench.results import Status
from normbench.suites.audit import run_audit

REASON = "Triton 3.2.0 is older than 3.3, the oldest release normbench's kernels are checked on"


@pytest.mark.parametrize(
    ("version", "refused"),
    [
        ("2.3.1", True),  # torch 2.3's
        ("3.0.0", True),  # torch 2.4's
        ("3.2.0", True),
        ("3.2.0+git4b3b3ac", True),
        ("3.3.0", False),  # torch 2.7's
        ("3.3.1", False),
        ("3.6.0", False),
        ("3.10.0", False),  # 10 > 3, not "1" < "3"
        ("4.0.0rc1", False),
    ],
)
def test_which_releases_are_refused(version, refused):
    problem = triton_problem(version)
    assert (problem is not None) == refused
    if refused:
        assert problem.startswith(f"Triton {version} is older than 3.3")
        assert problem.endswith("upgrade to torch>=2.7, whose Triton is 3.3 or newer")


@pytest.fixture
def triton_3_2(monkeypatch):
    """This machine as one with torch 2.6's Triton, 3.2.0."""
    import triton

    monkeypatch.setattr(triton, "__version__", "3.2.0")
    kernels.triton_problem_here.cache_clear()
    yield
    kernels.triton_problem_here.cache_clear()


def test_the_backend_and_every_call_give_the_reason(triton_3_2):
    ok, why = kernels.available()
    assert not ok and why.startswith(REASON)
    assert get_backend("triton").available() == why
    with pytest.raises(RuntimeError, match="unavailable: Triton 3.2.0 is older than 3.3"):
        kernels.rms_norm(torch.randn(2, 8), torch.ones(8))
    with pytest.raises(RuntimeError, match="unavailable: Triton 3.2.0 is older than 3.3"):
        kernels.layer_norm(torch.randn(2, 8), None, None)


def test_the_audit_gives_the_reason_on_every_row(triton_3_2):
    rows = run_audit(archs=["sm_90"], dtypes=["bf16"], dims=[1024])
    assert len(rows) == len(KERNELS)  # one row per kernel, none compiled
    assert all(r.status is Status.ERROR and r.note.startswith(REASON) for r in rows)


def test_speed_from_the_cli_reports_it_unavailable_with_the_reason(triton_3_2, tmp_path):
    r = CliRunner().invoke(app, [
        "speed", "--backend", "eager,triton", "--variant", "rmsnorm", "--dim", "64", "--batch",
        "1", "--seq", "8", "--dtype", "fp32", "--device", "cpu", "--quick", "--time-budget",
        "0.02", "--out", str(tmp_path), "--format", "json",
    ])  # fmt: skip
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())  # the table wraps long notes
    assert "Triton 3.2.0 is older than 3.3" in text
    assert "Traceback" not in r.output
