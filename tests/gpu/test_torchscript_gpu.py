"""TorchScript on CUDA: each case is scripted anew, so the fuser treats the 24th shape of a sweep
as it treats the first (one shared graph executor stops fusing after its specialization limit,
and a case's numbers would depend on the cases before it)."""

from __future__ import annotations

import warnings

import pytest
import torch

from normbench.backends.torchscript import TorchScriptBackend
from normbench.variants import get_variant

pytestmark = pytest.mark.gpu
SHAPES = [(8, 256 + 64 * i) for i in range(24)]  # past the fuser's ("STATIC", 2), ("DYNAMIC", 10)


def fused_after_profiling(fn, x, w) -> bool:
    """Run `fn` until the profiling executor has optimized it; whether the optimized graph holds
    a fusion group."""
    for _ in range(4):
        fn(x, w, 1e-6)
    graph = torch.jit.last_executed_optimized_graph()
    return "TensorExpr" in str(graph) or "FusionGroup" in str(graph)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_case_of_a_sweep_is_fused_alike():
    if not (torch._C._jit_texpr_fuser_enabled() and torch._C._jit_can_fuse_on_gpu()):
        pytest.skip("TorchScript's GPU fuser is off in this torch")
    backend, variant = TorchScriptBackend(), get_variant("rmsnorm")
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rows, n in SHAPES:
            fn = backend.build(variant, None)  # what the suites do per case
            x = torch.randn(rows, n, device="cuda")
            w = torch.ones(n, device="cuda")
            seen.append(fused_after_profiling(fn, x, w))
    assert seen[0], "the first case is not fused"
    assert all(seen), [n for (_, n), f in zip(SHAPES, seen) if not f]
