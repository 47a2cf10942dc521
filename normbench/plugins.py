"""User kernels as backends: `--plugin pkg.module:object`, `--plugin path/to/file.py[:object]`
and the `normbench.backends` entry-point group of installed packages.

What a plugin object may be (docs/plugins.md has the whole protocol):

- a `Backend` instance, or a `Backend` subclass (instantiated with no arguments);
- a `{variant: function}` dict: a backend named after the module or file (or the entry point);
- a function named after a variant (`def rmsnorm(x, weight, eps)`): a one-variant backend;
- a list or tuple of the above;
- a callable taking no arguments (a factory) that returns one of the above.

Without `:object`, a module or file is searched for `BACKENDS` (a list), then `BACKEND`, then
top-level functions named after variants (`rmsnorm`, `layernorm`, ...).

A plugin that cannot be loaded is a usage error naming the plugin (exit 2): the user asked for
it. An entry point that cannot be loaded is listed as an unavailable backend with the reason,
so an unrelated broken package never breaks `normbench list`. A plugin that loads but misbehaves
in a case (raises, wrong signature, wrong shape or dtype, NaN) is an error or mismatch row whose
note names the plugin (`label_plugin_result`), and the run goes on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from normbench.plugin_objects import (  # noqa: F401  (the names plugin authors and tests use)
    ENTRY_POINT_GROUP,
    PLUGIN_ORIGINS,
    PluginError,
    UnavailableBackend,
    _load_spec,
    absolute_plugin,
    entry_point_backends,
    parse_spec,
    to_backends,
    validate,
)
from normbench.registry import backends, register_backend, unregister_backend

if TYPE_CHECKING:
    from normbench.backends.base import Backend
    from normbench.results import CaseResult


def load_plugins(specs: Iterable[str]) -> list[Backend]:
    """Load and register each `--plugin` spec; returns the new backends in order.

    Loading the same spec again (a second command in one process) replaces its backends; a name
    taken by another backend is refused with both origins named."""
    loaded: list[Backend] = []
    # The same plugin twice is loaded once, however its path is spelt (plugins/x.py and
    # /abs/plugins/x.py were a name clash with itself).
    unique: dict[str, str] = {}
    for spec in specs:
        unique.setdefault(absolute_plugin(spec) if spec.strip() else spec, spec)
    for spec in unique.values():
        found, origin = _load_spec(spec)
        names = [b.name for b in found]
        twice = next((n for n in names if names.count(n) > 1), None)
        if twice:
            raise PluginError(f"plugin {spec!r} defines backend {twice!r} twice")
        table = backends()
        for b in found:
            old = table.get(b.name)
            if old is not None and old.origin == origin:
                unregister_backend(b.name)
            if b.name in table:
                raise PluginError(
                    f"plugin {spec!r}: backend name {b.name!r} is already taken by "
                    f"{table[b.name].origin}; rename it"
                )
            register_backend(b, origin=origin)
            loaded.append(b)
    return loaded


# ---------------------------------------------------------------------------------------------
# Running


def plugin_label(backend_name: str) -> str | None:
    """'plugin NAME (ORIGIN)' for a backend that came from a plugin, else None."""
    b = backends().get(backend_name)
    origin = getattr(b, "origin", "") or ""
    if b is None or not origin.startswith(PLUGIN_ORIGINS):
        return None
    return f"plugin {backend_name} ({origin})"


def label_plugin_result(result: CaseResult) -> CaseResult:
    """Prefix the notes of a plugin's error and mismatch measurements with the plugin's name and
    origin, so a report read later says whose kernel failed and how."""
    label = plugin_label(result.backend)
    if not label:
        return result
    out = []
    for m in result.measurements:
        if m.status in ("error", "mismatch") and not m.note.startswith("plugin "):
            m = replace(m, note=f"{label}: {m.note}" if m.note else label)
        out.append(m)
    return result.replace_measurements(out)
