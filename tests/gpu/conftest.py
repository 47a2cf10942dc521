"""What the GPU tests share. They run in their own session, `pytest -m gpu` (tests/conftest.py
says why), on the current CUDA device with the compiled Triton kernels; without a CUDA device
each one is collected and skipped with the reason."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def arch() -> str:
    """The current device's architecture in the audit's words, e.g. "sm_90"."""
    import torch

    major, minor = torch.cuda.get_device_capability()
    return f"sm_{major}{minor}"
