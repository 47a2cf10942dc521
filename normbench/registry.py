"""The backend registry: built-ins, peers and user plugins, by name.

Backends are created lazily (they import torch), and each one knows where it came from so
`normbench list` can say so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.errors import UsageError

if TYPE_CHECKING:
    from normbench.backends.base import Backend

_BACKENDS: dict[str, Backend] = {}


def _builtins() -> list[Backend]:
    from normbench.backends.compile import CompileBackend
    from normbench.backends.composite import CompositeBackend
    from normbench.backends.eager import EagerBackend
    from normbench.backends.external import PEERS
    from normbench.backends.gemma import GemmaBackend, TritonGemmaBackend
    from normbench.backends.torchscript import TorchScriptBackend
    from normbench.backends.triton import TritonBackend, TritonLlamaBackend

    return [
        EagerBackend(),
        CompositeBackend(),
        TorchScriptBackend(),
        CompileBackend(),
        TritonBackend(),
        TritonLlamaBackend(),
        GemmaBackend(),
        TritonGemmaBackend(),
        *PEERS,
    ]


def backends() -> dict[str, Backend]:
    """All registered backends, built-ins first, then installed plugins (the `normbench.backends`
    entry points; a broken one is listed as unavailable), then `--plugin`s in load order."""
    if not _BACKENDS:
        from normbench.plugin_objects import entry_point_backends

        for b in _builtins():
            _BACKENDS[b.name] = b
        for b in entry_point_backends(taken=_BACKENDS):
            _BACKENDS[b.name] = b
    return _BACKENDS


def register_backend(backend: Backend, origin: str | None = None) -> Backend:
    """Add a backend (a plugin); a name already taken is refused with the owner named."""
    table = backends()
    if not backend.name or not isinstance(backend.name, str):
        raise UsageError(f"backend from {origin or backend.origin} has no name")
    if backend.name in table:
        raise UsageError(
            f"backend name {backend.name!r} from {origin or backend.origin} is already taken "
            f"by {table[backend.name].origin}"
        )
    if origin:
        backend.origin = origin
    table[backend.name] = backend
    return backend


def unregister_backend(name: str) -> None:
    backends().pop(name, None)


def get_backend(name: str) -> Backend:
    table = backends()
    try:
        return table[name]
    except KeyError:
        raise UsageError(f"unknown backend {name!r}: choose from {', '.join(table)}") from None


DEFAULT_BACKENDS = ("eager", "composite", "torchscript", "compile", "triton")
