"""The selection and configs of `stability --inputs` and `speed --shapes-from`: the capture's
layers give the shapes (so --dim, --batch, --seq and --heads are refused beside them), its
variants the default --variant, its dtype the default --dtype (stability adds fp16 and bf16);
the file is read and checked before anything is measured (docs/capture.md "Replay")."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from normbench.capture.records import CaptureMeta
from normbench.config import Selection, SpeedConfig, StabilityConfig, Strings, unique
from normbench.config_args import (
    LAYER_OPTIONS,
    SPEED_DEFAULTS,
    STABILITY_DEFAULTS,
    DeviceDefaults,
    SelectionArgs,
    TimingArgs,
    build_selection,
    build_speed_config,
    build_stability_config,
    dtype_flags,
)
from normbench.dtypes import DTYPE_NAMES
from normbench.errors import UsageError
from normbench.formats import DEFAULT_FORMATS, DEFAULT_OUT
from normbench.validate import given

REPLAYED = ("layernorm", "rmsnorm")  # the variants a captured layer's tensors make sense for
SHAPE_OPTIONS = (("dim", "--dim"), ("batch", "--batch"), ("seq", "--seq"), ("heads", "--heads"))
# The layer's own options (heads is a shape option above): a captured layer has its weight,
# bias and dtypes already (they were silently dropped before).
OWN_OPTIONS = tuple((f, "--" + f.replace("_", "-")) for f in LAYER_OPTIONS if f != "heads")


def captured_selection(
    args: SelectionArgs,
    path: Path,
    option: str,
    defaults: DeviceDefaults,
    extra_dtypes: tuple[str, ...] = (),
) -> tuple[Selection, bool, CaptureMeta]:
    """The selection over a capture's layers, whether each layer runs as its own variant (no
    --variant), and the capture's header."""
    from normbench.capture.store import read_meta

    for field, flag in SHAPE_OPTIONS:
        if getattr(args, field):
            raise UsageError(f"{flag} cannot be combined with {option}: the shapes are the "
                             "captured layers'")  # fmt: skip
    for field, flag in OWN_OPTIONS:
        if getattr(args, field):
            raise UsageError(f"{flag} cannot be combined with {option}: each captured layer "
                             "keeps its own weight, bias and dtypes")  # fmt: skip
    meta = read_meta(path, option)
    shapes = [m.case_shape() for m in meta.layers]
    own = not given(args.variant, "--variant")
    captured = unique(m.dtype for m in meta.layers if m.dtype in DTYPE_NAMES) or ["fp32"]
    dtypes = given(args.dtype, "--dtype") or unique([*captured, *extra_dtypes])
    picked = replace(
        args,
        variant=args.variant or unique(m.variant for m in meta.layers),
        dtype=dtypes,
        dim=unique(str(s.dim) for s in shapes),
        batch=unique(str(s.batch) for s in shapes),
        seq=unique(str(s.seq) for s in shapes),
    )
    return build_selection(picked, defaults), own, meta


def replay_config(
    args: SelectionArgs,
    inputs: Path,
    fp16: bool = False,
    bf16: bool = False,
    fp32: bool = False,
    dist: Strings = None,
    sweep_range: str | None = None,
    determinism: bool = True,
    fail_on: str | None = None,
    out: Path = DEFAULT_OUT,
    formats: tuple[str, ...] = DEFAULT_FORMATS,
) -> StabilityConfig:
    """`stability --inputs`: the capture's layers in its dtype, fp16 and bf16 (or the dtypes
    given), each selected implementation, no synthetic input and no sweep."""
    if given(dist, "--dist"):
        raise UsageError("--dist cannot be combined with --inputs: the inputs are the captured "
                         "layers'")  # fmt: skip
    if sweep_range is not None:
        raise UsageError("--sweep-range scales synthetic unit-max inputs; it cannot be combined "
                         "with --inputs")  # fmt: skip
    other = [v for v in given(args.variant, "--variant") if v not in REPLAYED]
    if other:
        raise UsageError(f"--variant {other[0]}: a captured layer is replayed as "
                         f"{' or '.join(REPLAYED)} (docs/capture.md \"Replay\")")  # fmt: skip
    dtypes = dtype_flags(args, fp16, bf16, fp32)
    sel, own, _ = captured_selection(replace(args, dtype=dtypes or None), Path(inputs), "--inputs",
                                     STABILITY_DEFAULTS, ("fp16", "bf16"))  # fmt: skip
    config = build_stability_config(sel, determinism=determinism, fail_on=fail_on, out=out,
                                    formats=formats)  # fmt: skip
    return replace(config, inputs=str(inputs), own_variants=own)


def shapes_config(
    args: SelectionArgs, shapes_from: Path, timing: TimingArgs, out: Path,
    formats: tuple[str, ...], **kw,
) -> SpeedConfig:  # fmt: skip
    """`speed --shapes-from`: the capture's shapes, in its dtype unless --dtype is given."""
    sel, own, _ = captured_selection(args, Path(shapes_from), "--shapes-from", SPEED_DEFAULTS)
    return build_speed_config(sel, timing, out, formats, shapes_from=str(shapes_from),
                              own_variants=own, **kw)  # fmt: skip
