"""What a backend is. Built-in backends, peers and user plugins all implement this.

A backend turns a variant into a callable with the variant's signature,
`fn(**tensors, **scalars) -> Tensor | tuple[Tensor, ...]`, and says in words what it cannot do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from normbench.variants.base import DEFAULT_SEMANTICS, MODES, Semantics

if TYPE_CHECKING:
    from normbench.cases import Case
    from normbench.variants import Variant


def reason_from(backend: Backend, method: str, *args: Any) -> str | None:
    """`backend.<method>(*args)` (supports, timing_blocker): None, or the reason in words. A
    plugin's method that answers anything else (a number, a list) raises TypeError naming it,
    which the case loop makes an error row of: such a value used to reach the reports and
    crash them after the whole run was measured."""
    value = getattr(backend, method)(*args)
    if value is None or isinstance(value, str):
        return value or None
    from normbench.fmt import a_type

    raise TypeError(f"{backend.name}.{method}() returned {a_type(value)}, not None or a reason")


class Backend:
    """Subclass and override; or use `FunctionBackend` for a table of plain functions."""

    name: str = ""
    description: str = ""
    origin: str = "builtin"
    # Variants this backend implements; empty means all.
    variants: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ("fp32", "fp16", "bf16")
    devices: tuple[str, ...] = ("cpu", "cuda")
    # fwd, bwd, fwd+bwd: a forward-only kernel (no autograd) sets ("fwd",).
    modes: tuple[str, ...] = MODES
    # Layer options it takes beyond the plain layer (normbench.options.TAKES: "affine",
    # "weight_dtype", "bias", "residual_dtype", "heads"); a case with any other is skipped.
    options: tuple[str, ...] = ()
    # Per-variant semantics; a missing variant uses `default_semantics`.
    semantics: Mapping[str, Semantics] = {}
    default_semantics: Semantics = DEFAULT_SEMANTICS

    def available(self) -> str | None:
        """None when usable on this machine, else the reason in words."""
        return None

    def timing_blocker(self, device: str) -> str | None:
        """None when its timings mean something on `device` (an interpreter's would not)."""
        return None

    def supports(self, case: Case) -> str | None:
        """None when this backend can run `case`, else the reason."""
        reason = self.available()
        if reason:
            return reason
        if self.variants and case.variant not in self.variants:
            return f"{self.name} has no {case.variant} (it implements {', '.join(self.variants)})"
        if case.dtype not in self.dtypes:
            return f"{self.name} does not support {case.dtype}"
        if case.device_type not in self.devices:
            return f"{self.name} does not run on {case.device_type}"
        if case.mode not in self.modes:
            return f"{self.name} has no {case.mode} (it implements {', '.join(self.modes)})"
        return self.options_blocker(case)

    def options_blocker(self, case: Case) -> str | None:
        """Why this backend cannot take the case's layer options, or None."""
        wanted = list(case.options.non_default())
        if case.shape.heads > 1:
            wanted.append("heads")
        missing = [case.options.describe_one(o) for o in wanted if o not in self.options]
        return f"{self.name} does not take {', '.join(missing)}" if missing else None

    def semantics_for(self, variant: str) -> Semantics:
        return self.semantics.get(variant, self.default_semantics)

    def build(self, variant: Variant, case: Case) -> Callable[..., Any]:
        raise NotImplementedError

    def describe(self) -> str:
        return self.description


@dataclass
class FunctionBackend(Backend):
    """The common case: one plain function per variant name."""

    name: str = ""
    functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    description: str = ""
    dtypes: tuple[str, ...] = ("fp32", "fp16", "bf16")
    devices: tuple[str, ...] = ("cpu", "cuda")
    semantics: Mapping[str, Semantics] = field(default_factory=dict)
    default_semantics: Semantics = DEFAULT_SEMANTICS
    origin: str = "builtin"
    modes: tuple[str, ...] = MODES

    def __post_init__(self) -> None:
        self.variants = tuple(self.functions)

    def build(self, variant: Variant, case: Case) -> Callable[..., Any]:
        return self.functions[variant.name]


def backend_from_functions(
    name: str,
    functions: Mapping[str, Callable[..., Any]],
    *,
    description: str = "",
    dtypes: Iterable[str] = ("fp32", "fp16", "bf16"),
    devices: Iterable[str] = ("cpu", "cuda"),
    semantics: Mapping[str, Semantics] | Semantics | None = None,
    modes: Iterable[str] = MODES,
) -> FunctionBackend:
    """Make a backend from `{"rmsnorm": fn, ...}`; each fn takes the variant's arguments.

    `semantics` is one `Semantics` for every variant or a `{variant: Semantics}` table;
    `modes=("fwd",)` for functions autograd cannot differentiate."""
    one = isinstance(semantics, Semantics)
    return FunctionBackend(
        name=name,
        functions=dict(functions),
        description=description,
        dtypes=tuple(dtypes),
        devices=tuple(devices),
        semantics={} if one else dict(semantics or {}),
        default_semantics=semantics if one else DEFAULT_SEMANTICS,
        modes=tuple(modes),
    )
