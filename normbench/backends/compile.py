"""The composite formulas under torch.compile. The first call (compilation) is timed apart and
reported as compile time, never inside the run-time numbers."""

from __future__ import annotations

import shutil

from normbench.backends.base import Backend
from normbench.backends.composite import FUNCTIONS, LLAMA


class CompileBackend(Backend):
    name = "compile"
    description = "the composite formula under torch.compile (compile time reported separately)"
    variants = tuple(FUNCTIONS)
    default_semantics = LLAMA
    compiles = True

    def available(self) -> str | None:
        # Inductor's CPU backend generates C++; without a compiler every case would error.
        if not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")):
            return "torch.compile needs a C++ compiler (g++ or clang++) on PATH"
        return None

    def build(self, variant, case):
        import torch

        # A fresh dynamo state per case: the compile time measured is this case's own, and a sweep
        # never hits the recompile limit (past it dynamo silently falls back to eager).
        torch._dynamo.reset()
        # `bwd` times one backward graph replayed (retain_graph=True), which a backward compiled
        # with donated buffers refuses: every compile/bwd row was an error. Elsewhere they stay
        # on, as a user's compiled training step has them. Read when the first call compiles.
        from torch._functorch import config as functorch_config

        if hasattr(functorch_config, "donated_buffer"):
            functorch_config.donated_buffer = case.mode != "bwd"
        return torch.compile(FUNCTIONS[variant.name], dynamic=False)
