"""The composite formulas under torch.jit.script (deprecated upstream, still in model code)."""

from __future__ import annotations

import types
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
            return torch.jit.script(fresh_function(FUNCTIONS[variant.name]))


def fresh_function(fn: types.FunctionType) -> types.FunctionType:
    """A new function object with `fn`'s code. torch.jit.script keeps one compiled function,
    and so one graph executor, per Python function: scripting the same one again returns it.
    That executor specializes on the shapes it has seen and past the fuser's limit runs later
    shapes unfused, so each case's numbers would depend on the cases before it (issue 21). A
    fresh object is scripted anew (under a mangled name) with an executor of its own."""
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__,
                              fn.__closure__)  # fmt: skip
    copy.__kwdefaults__ = fn.__kwdefaults__
    copy.__qualname__, copy.__module__ = fn.__qualname__, fn.__module__
    copy.__annotations__ = dict(fn.__annotations__)
    return copy
