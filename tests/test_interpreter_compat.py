"""Triton's interpreter beside numpy: before Triton 3.7 it converts one-element arrays to ints,
which numpy 2.4 refuses, so every kernel call on CPU fails (seen with Triton 3.6.0 and numpy
2.4.6; the same tests passed with numpy 2.3.5). normbench says so instead of failing each call."""

from __future__ import annotations

import pytest
import torch

import normbench.kernels as kernels
from normbench.kernels import interpreter_problem
from normbench.registry import get_backend


@pytest.mark.parametrize(
    ("triton", "numpy", "broken"),
    [
        ("3.6.0", "2.4.6", True),
        ("3.6.0", "2.5.2", True),
        ("3.0.0", "2.4.0rc1", True),
        ("3.6.0", "2.3.5", False),
        ("3.7.0", "2.4.6", False),
        ("3.9.0+git1a2b3c", "2.5.0", False),
        ("3.10.0", "2.4.6", False),  # 10 > 7, not "1" < "7"
    ],
)
def test_which_versions_cannot_run_the_interpreter(triton, numpy, broken):
    problem = interpreter_problem(triton, numpy)
    assert (problem is not None) == broken
    if broken:
        assert problem.startswith(f"Triton {triton}'s interpreter cannot run beside numpy {numpy}")
        assert "install triton>=3.7 or numpy<2.4" in problem


@pytest.fixture
def old_triton(monkeypatch):
    """This machine as one with Triton 3.6.0 and numpy 2.4.6."""
    import numpy
    import triton

    monkeypatch.setattr(triton, "__version__", "3.6.0")
    monkeypatch.setattr(numpy, "__version__", "2.4.6")
    kernels.interpreter_problem_here.cache_clear()
    kernels.triton_problem_here.cache_clear()  # 3.6.0 is above the floor, whatever is installed
    yield
    kernels.interpreter_problem_here.cache_clear()
    kernels.triton_problem_here.cache_clear()


def test_the_backend_is_unavailable_with_the_reason_and_calls_say_it(old_triton):
    assert kernels.interpreted()  # the CPU suite runs the interpreter (conftest)
    ok, why = kernels.available()
    assert not ok and why.startswith("Triton 3.6.0's interpreter cannot run beside numpy 2.4.6")
    assert get_backend("triton").available() == why
    with pytest.raises(RuntimeError, match="unavailable: Triton 3.6.0's interpreter"):
        kernels.rms_norm(torch.randn(2, 8), None)
