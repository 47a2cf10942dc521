"""Turning a plugin's objects into backends: the loading of `--plugin` specs (a module or a file)
and of the `normbench.backends` entry points, and the checks every plugin backend passes
(normbench.plugins says what a plugin may be and registers them)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normbench.backends.base import Backend, backend_from_functions
from normbench.errors import UsageError
from normbench.fmt import a_type
from normbench.variants.base import MODES, Semantics

if TYPE_CHECKING:
    from types import ModuleType


ENTRY_POINT_GROUP = "normbench.backends"
# Origins of backends that came from outside normbench; their failures are labelled as a plugin's.
PLUGIN_ORIGINS = ("plugin ", "entry point ")
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
KINDS = (
    "a Backend instance, a Backend subclass, a {variant: function} dict, a function named after "
    "a variant, or a no-argument factory returning one of these"
)


class PluginError(UsageError):
    """A plugin that cannot be loaded (exit 2): the message names the plugin and the problem."""


class UnavailableBackend(Backend):
    """Stands in for an entry point that failed to load: listed, and every case skipped, with
    the reason."""

    def __init__(self, name: str, origin: str, reason: str) -> None:
        self.name = name
        self.origin = origin
        self.reason = reason
        self.description = "failed to load"

    def available(self) -> str | None:
        return self.reason

    def build(self, variant, case):  # pragma: no cover - supports() always refuses first
        raise RuntimeError(self.reason)


# ---------------------------------------------------------------------------------------------
# Loading


# What plugin code may raise that normbench turns into a sentence: every Exception, and SystemExit
# (a plugin's sys.exit() would otherwise end the run with exit 0 and nothing written; see
# docs/plugins.md "What a plugin cannot break"). KeyboardInterrupt stays the user's.
PLUGIN_FAILURES = (Exception, SystemExit)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _import_failure(label: str, exc: BaseException, module: str | None = None) -> PluginError:
    if isinstance(exc, SyntaxError):
        where = Path(exc.filename).name if exc.filename else "the file"
        return PluginError(f"{label}: syntax error in {where} line {exc.lineno}: {exc.msg}")
    if (
        isinstance(exc, ModuleNotFoundError)
        and module
        and exc.name
        and (module == exc.name or module.startswith(exc.name + "."))
    ):
        return PluginError(
            f"{label}: no module named {exc.name!r} (install it, or run from the folder that "
            "holds it, or add that folder to PYTHONPATH)"
        )
    return PluginError(f"{label} failed to import: {_describe(exc)}")


def _load_file(path: Path, label: str) -> ModuleType:
    if not path.is_file():
        what = "is a folder, not a .py file" if path.is_dir() else "does not exist"
        raise PluginError(f"{label}: {path} {what}")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    modname = f"normbench_plugin_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has a loader
        raise PluginError(f"{label}: cannot load {path} as Python")
    module = importlib.util.module_from_spec(spec)
    # Registered before running, as an import does, so dataclasses and pickling inside it work.
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except PLUGIN_FAILURES as exc:
        sys.modules.pop(modname, None)
        raise _import_failure(label, exc) from exc
    return module


def _import_module(name: str, label: str) -> ModuleType:
    # As `python -m` does, look in the current folder too (the console script's sys.path does
    # not), but after everything installed.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(name)
    except PLUGIN_FAILURES as exc:
        raise _import_failure(label, exc, name) from exc


def _attribute(module: ModuleType, dotted: str, label: str, where: str) -> Any:
    obj: Any = module
    for part in dotted.split("."):
        if not hasattr(obj, part):
            public = sorted(k for k in vars(module) if not k.startswith("_"))
            hint = f" (it defines {', '.join(public[:12])})" if public else ""
            raise PluginError(f"{label}: {where} has no {dotted!r}{hint}")
        obj = getattr(obj, part)
    return obj


def _variant_names() -> list[str]:
    from normbench.variants import VARIANTS

    return list(VARIANTS)


def _default_objects(module: ModuleType, label: str, where: str) -> list[tuple[Any, str | None]]:
    """What a module offers when no object is named: BACKENDS, BACKEND, or variant functions."""
    if hasattr(module, "BACKENDS"):
        return [(module.BACKENDS, None)]
    if hasattr(module, "BACKEND"):
        return [(module.BACKEND, None)]
    found = {
        v: getattr(module, v)
        for v in _variant_names()
        if inspect.isfunction(getattr(module, v, None))
    }
    if found:
        return [(found, None)]
    raise PluginError(
        f"{label}: {where} defines no BACKENDS, BACKEND or variant functions "
        f"({', '.join(_variant_names())}); name the object with {where}:OBJECT"
    )


def _takes_arguments(fn: Any) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return any(
        p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        for p in sig.parameters.values()
    )


def to_backends(obj: Any, default_name: str, label: str, attr: str | None = None) -> list[Backend]:
    """Turn a plugin object into backends (see the module docstring), refusing anything else
    with a sentence naming the plugin."""
    if isinstance(obj, Backend):
        return [obj]
    if isinstance(obj, type) and issubclass(obj, Backend):
        try:
            return [obj()]
        except PLUGIN_FAILURES as exc:
            raise PluginError(f"{label}: {obj.__name__}() raised {_describe(exc)}") from exc
    if isinstance(obj, Mapping):
        return [backend_from_functions(default_name, obj)]
    if isinstance(obj, (list, tuple)):
        if not obj:
            raise PluginError(f"{label}: the list of backends is empty")
        return [b for item in obj for b in to_backends(item, default_name, label)]
    if callable(obj):
        fn_name = attr or getattr(obj, "__name__", "")
        if _takes_arguments(obj):
            if fn_name in _variant_names():
                return [backend_from_functions(default_name, {fn_name: obj})]
            raise PluginError(
                f"{label}: {fn_name or 'the object'} is a function with parameters whose name is "
                f"not a variant ({', '.join(_variant_names())}); expected {KINDS}"
            )
        try:
            made = obj()
        except PLUGIN_FAILURES as exc:
            raise PluginError(f"{label}: the factory {fn_name}() raised {_describe(exc)}") from exc
        if callable(made) and not isinstance(made, (Backend, type)):
            raise PluginError(f"{label}: the factory {fn_name}() returned a function; {KINDS}")
        return to_backends(made, default_name, label)
    raise PluginError(f"{label}: got a {type(obj).__name__}; expected {KINDS}")


def _set(backend: Backend, name: str, value: Any) -> None:
    # Normalized values are written back; a frozen dataclass backend is written around.
    try:
        setattr(backend, name, value)
    except (AttributeError, TypeError):
        object.__setattr__(backend, name, value)


def validate(backend: Backend, label: str) -> Backend:
    """Check the declared protocol fields, with one sentence per problem naming the plugin."""
    from normbench.dtypes import canonical

    name = backend.name
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise PluginError(
            f"{label}: backend name {name!r} must be a non-empty word of letters, digits, "
            "'_', '.', '+' or '-' (it is used in --backend lists and case ids)"
        )
    who = f"{label}: backend {name!r}"
    variants = _variant_names()
    declared = tuple(getattr(backend, "variants", ()) or ())
    for v in declared:
        if v not in variants:
            raise PluginError(f"{who} declares unknown variant {v!r}: choose from "
                              f"{', '.join(variants)}")  # fmt: skip
    _set(backend, "variants", declared)
    try:
        dtypes = tuple(canonical(d) for d in backend.dtypes)
    except UsageError as exc:
        raise PluginError(f"{who}: {exc}") from None
    _set(backend, "dtypes", dtypes)
    for d in backend.devices:
        if d not in ("cpu", "cuda"):
            raise PluginError(f"{who} declares unknown device {d!r}: choose from cpu, cuda")
    for m in getattr(backend, "modes", MODES):
        if m not in MODES:
            raise PluginError(f"{who} declares unknown mode {m!r}: choose from {', '.join(MODES)}")
    if not isinstance(backend.default_semantics, Semantics):
        raise PluginError(f"{who}: default_semantics must be a normbench Semantics")
    if isinstance(backend.semantics, Semantics):  # one declaration for every variant
        _set(backend, "default_semantics", backend.semantics)
        _set(backend, "semantics", {})
    for v, sem in dict(backend.semantics).items():
        if v not in variants or not isinstance(sem, Semantics):
            raise PluginError(f"{who}: semantics must map variant names to Semantics "
                              f"(got {v!r}: {type(sem).__name__})")  # fmt: skip
    functions = getattr(backend, "functions", None)
    if isinstance(functions, Mapping):
        for v, fn in functions.items():
            if not callable(fn):
                raise PluginError(f"{who}: {v} is {a_type(fn)}, not a function")
    elif type(backend).build is Backend.build:
        raise PluginError(f"{who} does not implement build(variant, case)")
    return backend


def parse_spec(spec: str) -> tuple[str, str | None, bool]:
    """'pkg.mod:obj' -> ('pkg.mod', 'obj', False); 'dir/f.py[:obj]' -> ('dir/f.py', obj, True)."""
    spec = spec.strip()
    head, sep, tail = spec.rpartition(":")
    if sep and head.endswith(".py"):
        return head, tail or None, True
    if spec.endswith(".py") or "/" in spec or os.sep in spec:
        return spec, None, True
    if sep:
        return head, tail or None, False
    return spec, None, False


def absolute_plugin(spec: str) -> str:
    """A file spec with its path made absolute (for a process started in another directory);
    a module spec as it is."""
    target, attr, is_file = parse_spec(spec)
    if not is_file:
        return spec.strip()
    path = str(Path(target).expanduser().resolve())
    return f"{path}:{attr}" if attr else path


def _load_spec(spec: str) -> tuple[list[Backend], str]:
    label = f"plugin {spec!r}"
    if not spec.strip():
        raise PluginError("--plugin is empty: give pkg.module:object or path/to/file.py")
    target, attr, is_file = parse_spec(spec)
    if is_file:
        path = Path(target).expanduser()
        module = _load_file(path, label)
        origin, default_name, where = f"plugin file {target}", path.stem, target
    else:
        module = _import_module(target, label)
        origin, default_name, where = f"plugin module {target}", target.rsplit(".", 1)[-1], target
    objects = (
        [(_attribute(module, attr, label, where), attr.rsplit(".", 1)[-1])]
        if attr
        else _default_objects(module, label, where)
    )
    found = [b for obj, a in objects for b in to_backends(obj, default_name, label, a)]
    return [validate(b, label) for b in found], origin


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    seen, out = set(), []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        key = (ep.name, ep.value)
        if key not in seen:  # one distribution found twice on sys.path
            seen.add(key)
            out.append(ep)
    return sorted(out, key=lambda ep: ep.name)


def entry_point_backends(taken: Iterable[str] = ()) -> list[Backend]:
    """Backends of installed packages (group `normbench.backends`). Never raises: a broken entry
    point or a clashing name becomes an unavailable backend with the reason."""
    taken = set(taken)
    out: list[Backend] = []
    for ep in _entry_points():
        dist = getattr(getattr(ep, "dist", None), "name", None) or ep.value.split(":")[0]
        origin = f"entry point {dist}"
        label = f"entry point {ep.name} = {ep.value} ({dist})"
        try:
            obj = ep.load()
            found = [validate(b, label) for b in to_backends(obj, ep.name, label, ep.attr)]
        except PLUGIN_FAILURES as exc:  # an installed package's bug must not break normbench
            plugin_error = isinstance(exc, PluginError)
            reason = str(exc) if plugin_error else f"failed to import: {_describe(exc)}"
            found = [UnavailableBackend(ep.name, origin, reason.replace(f"{label}: ", ""))]
        for b in found:
            b.origin = origin
            if b.name in taken:
                name = f"{dist}.{b.name}"
                reason = f"its name {b.name!r} is already taken by another backend"
                b = UnavailableBackend(name, origin, reason)
            taken.add(b.name)
            out.append(b)
    return out
