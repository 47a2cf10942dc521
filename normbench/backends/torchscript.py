"""The composite formulas under torch.jit.script (deprecated upstream, still in model code)."""

from __future__ import annotations

import warnings

from normbench.backends.base import Backend
from normbench.backends.composite import FUNCTIONS, LLAMA

# torch 2.13 warns once per scripted call site ("switch to torch.compile or torch.export");
# normbench silences it and says so in `normbench list` instead (docs/numerics.md section 8).
DEPRECATION_NOTE = "torch.jit.script is deprecated upstream; its DeprecationWarning is silenced"


class TorchScriptBackend(Backend):
    name = "torchscript"
    description = "the composite formula under torch.jit.script (" + DEPRECATION_NOTE + ")"
    variants = tuple(FUNCTIONS)
    default_semantics = LLAMA

    def build(self, variant, case):
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.script(FUNCTIONS[variant.name])
