"""The capture file: safetensors, each layer's tensors under `layer<i>.<x|y|weight|bias|dy>`,
and the JSON header (normbench.capture.records.Capture.header) as the metadata entry
`normbench` (docs/capture.md "The file"). Written atomically and never over an existing file;
read back with every check a hand-made or foreign file could fail, each one sentence (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normbench.capture.records import (
    FORMAT,
    RESIDUAL,
    VERSION,
    Capture,
    CapturedLayer,
    CaptureMeta,
    LayerMeta,
    is_eps,
    torch_dtype,
)
from normbench.errors import UsageError

if TYPE_CHECKING:
    import torch

META_KEY = "normbench"


def key(index: int, tensor: str) -> str:
    return f"layer{index}.{tensor}"


def need_safetensors(what: str) -> Any:
    """The safetensors package, or one sentence saying it is missing."""
    try:
        import safetensors.torch
    except ImportError:
        raise UsageError(f"{what} needs the safetensors package: pip install safetensors") from None
    return safetensors


def encode(capture: Capture) -> bytes:
    """The file's bytes: every layer's tensors (contiguous CPU copies) and the header."""
    safetensors = need_safetensors("writing a capture file")
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for layer in capture.layers:
        for name, t in layer.tensors().items():
            t = t.detach().cpu().contiguous()
            if t.untyped_storage().data_ptr() in seen:  # safetensors refuses shared storage
                t = t.clone()
            seen.add(t.untyped_storage().data_ptr())
            tensors[key(layer.meta.index, name)] = t
    header = json.dumps(capture.header(), default=str)
    return safetensors.torch.save(tensors, metadata={META_KEY: header})


def check_out(path: Path) -> Path:
    """Refuse an --out that exists (a capture is never overwritten) or whose folder cannot take
    it, before the model is loaded."""
    from normbench.formats import is_stdout
    from normbench.outdir import prepare_out

    path = Path(path)
    if is_stdout(path) or path.name.startswith("-"):
        # Elsewhere `--out -` is stdout; a capture is a binary file beside its summary reports.
        raise UsageError(f"--out {path}: a capture is written to a file, not to stdout; give "
                         "its name, e.g. capture.safetensors")  # fmt: skip
    if path.is_dir():
        raise UsageError(f"--out {path}: is a folder; give the capture file's name, e.g. "
                         f"{path / 'capture.safetensors'}")  # fmt: skip
    if path.exists():
        raise UsageError(f"--out {path}: the file exists; a capture never overwrites one: "
                         "give another name")  # fmt: skip
    prepare_out(path.parent if str(path.parent) else Path("."), "--out")
    return path


def write_capture(capture: Capture, path: str | Path) -> Path:
    """Write `capture` to `path` atomically; refuse (exit 2) a name that exists."""
    from normbench.results import atomic_write_text

    path = Path(path)
    data = encode(capture)
    try:
        return atomic_write_text(path, data)
    except FileExistsError:
        raise UsageError(f"--out {path}: the file exists; a capture never overwrites one") from None
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot write it ({exc.strerror or exc})") from None


# --- reading -------------------------------------------------------------------------------------


def _open(path: Path, option: str) -> Any:
    need_safetensors(f"{option} {path}")
    from safetensors import safe_open

    if not path.exists():
        raise UsageError(f"{option} {path}: no such file")
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder, not a capture file")
    try:
        return safe_open(str(path), framework="pt")
    except Exception as exc:  # safetensors raises its own error type for a foreign header
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"{option} {path}: not a safetensors file ({first}); give a file written by "
            "normbench capture"
        ) from None


def _header(handle: Any, path: Path, option: str) -> dict:
    meta = handle.metadata() or {}
    text = meta.get(META_KEY)
    if text is None:
        raise UsageError(
            f"{option} {path}: a safetensors file without normbench capture metadata (a model's "
            "weights?); give a file written by normbench capture"
        )
    try:
        header = json.loads(text)
    except json.JSONDecodeError:
        raise UsageError(f"{option} {path}: its normbench metadata is not valid JSON") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise UsageError(f"{option} {path}: its normbench metadata is not a capture header")
    if header.get("version") != VERSION:
        raise UsageError(
            f"{option} {path}: capture format version {header.get('version')!r}; this normbench "
            f"reads version {VERSION}"
        )
    return header


def _layers(header: dict, path: Path, option: str) -> tuple[LayerMeta, ...]:
    from normbench.variants import VARIANTS

    try:
        layers = tuple(LayerMeta.from_dict(d) for d in header.get("layers") or [])
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{option} {path}: a malformed layer in its header ({exc})") from None
    if not layers:
        raise UsageError(f"{option} {path}: the capture holds no layer")
    for m in layers:
        bad = (
            (m.variant not in ("layernorm", "rmsnorm") or m.variant not in VARIANTS, "variant"),
            (m.residual not in RESIDUAL, "residual"), (m.cast not in ("fp32", "llama", "gemma"),
                                                         "cast"),
            (not m.shape or min(m.shape) < 1, "shape"),
            (not is_eps(m.eps), "eps"),
        )  # fmt: skip
        for wrong, what in bad:
            if wrong:
                value = getattr(m, what)
                raise UsageError(f"{option} {path}: layer {m.index} ({m.name}) has {what} "
                                 f"{value!r}")  # fmt: skip
    return layers


def _expected(m: LayerMeta) -> dict[str, tuple[tuple[int, ...], str]]:
    """The tensors a layer must have, with their shape and dtype."""
    out = {"x": (m.shape, m.dtype), "y": (m.shape, m.dtype)}
    if m.weight_dtype is not None:
        out["weight"] = ((m.dim,), m.weight_dtype)
        if m.bias:
            out["bias"] = ((m.dim,), m.weight_dtype)
    if m.grad:
        out["dy"] = (m.shape, m.dtype)
    return out


def _check_tensors(handle: Any, layers: tuple[LayerMeta, ...], path: Path, option: str) -> None:
    keys = set(handle.keys())
    for m in layers:
        for name, (shape, _) in _expected(m).items():
            k = key(m.index, name)
            if k not in keys:
                raise UsageError(f"{option} {path}: layer {m.index} ({m.name}) has no {name} "
                                 f"tensor ({k})")  # fmt: skip
            got = tuple(handle.get_slice(k).get_shape())
            if got != tuple(shape):
                raise UsageError(f"{option} {path}: {k} has shape {got}, its header says "
                                 f"{tuple(shape)}")  # fmt: skip


def read_meta(path: str | Path, option: str = "--inputs") -> CaptureMeta:
    """A capture file's header, checked against its tensors' names and shapes (none loaded)."""
    path = Path(path)
    with _open(path, option) as handle:
        header, layers = _checked(handle, path, option)
    return CaptureMeta(str(path), *_source(header), layers, *_outcome(header))


def _checked(handle: Any, path: Path, option: str) -> tuple[dict[str, Any], tuple[LayerMeta, ...]]:
    """The header and its layers, checked against the tensors' names and shapes."""
    header = _header(handle, path, option)
    layers = _layers(header, path, option)
    _check_tensors(handle, layers, path, option)
    return header, layers


def _source(header: dict[str, Any]) -> tuple[str, str]:
    """What was run: the model spec and the batch."""
    return str(header.get("model", "")), str(header.get("batch", ""))


def _outcome(header: dict[str, Any]) -> tuple[Any, bool, Any, tuple[str, ...]]:
    """How the capture went: the loss, whether it finished, its error, the layers ignored."""
    return (header.get("loss"), bool(header.get("complete", True)), header.get("error"),
            tuple(header.get("ignored") or ()))  # fmt: skip


def read_capture(path: str | Path, option: str = "--inputs") -> Capture:
    """A capture file with its tensors, checked as read_meta does and for each tensor's dtype."""
    path = Path(path)
    with _open(path, option) as handle:
        header, layers = _checked(handle, path, option)
        out = []
        for m in layers:
            got: dict[str, torch.Tensor] = {}
            for name, (_, dtype) in _expected(m).items():
                t = handle.get_tensor(key(m.index, name))
                try:
                    want = torch_dtype(dtype)
                except AttributeError:
                    raise UsageError(f"{option} {path}: layer {m.index} ({m.name}) has dtype "
                                     f"{dtype!r}, which torch does not know") from None  # fmt: skip
                if t.dtype != want:
                    raise UsageError(f"{option} {path}: {key(m.index, name)} is {t.dtype}, its "
                                     f"header says {dtype}")  # fmt: skip
                got[name] = t
            out.append(CapturedLayer(m, got["x"], got["y"], got.get("weight"), got.get("bias"),
                                     got.get("dy")))  # fmt: skip
    return Capture(*_source(header), tuple(out), *_outcome(header),
                   dict(header.get("extra") or {}))  # fmt: skip
