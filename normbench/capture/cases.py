"""Captured layers as cases: the replay's (`stability --inputs`, one per layer, its tensors
prepared as the gate prepares synthetic ones) and the model's own shapes (`speed
--shapes-from`, deduplicated, the layer names in the note). docs/capture.md "Replay" and
"The model's shapes"."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from normbench.cases import Case, filter_cases
from normbench.options import NormOptions

if TYPE_CHECKING:
    from normbench.capture.records import CapturedLayer, LayerMeta
    from normbench.config import Selection
    from normbench.gate import Prepared
    from normbench.results import CaseResult


def layer_options(m: LayerMeta, variant: str, dtype: str) -> NormOptions:
    """The layer options a case of this layer holds: no weight where it has none, a bias on
    RMSNorm where it has one, and its weight's dtype where the model kept it apart from x's
    (fp32 norm weights beside bf16 activations)."""
    from normbench.dtypes import DTYPE_NAMES

    if m.weight_dtype is None:
        return NormOptions(affine=False).for_case(variant, dtype)
    wd = m.weight_dtype if m.weight_dtype != m.dtype and m.weight_dtype in DTYPE_NAMES else None
    bias = m.bias and variant == m.variant == "rmsnorm"  # a LayerNorm as RMSNorm drops its bias
    return NormOptions(weight_dtype=wd, bias=bias).for_case(variant, dtype)


def layer_case(m: LayerMeta, variant: str, backend: str, dtype: str, mode: str, device: str,
               dist: str = "normal") -> Case:  # fmt: skip
    return Case(variant, backend, dtype, m.case_shape(), mode, device, dist,
                layer_options(m, variant, dtype))  # fmt: skip


def variants_for(m: LayerMeta, selection: Selection, own: bool) -> tuple[str, ...]:
    """The layer's own variant, or (--variant given) each selected variant."""
    return (m.variant,) if own else tuple(selection.variants)


def replay_cases(layers: Sequence[LayerMeta], selection: Selection, own: bool) -> list[Case]:
    """One case per dtype, layer, variant and backend, in that order; the layer's name is the
    case's input (`dist`), forward and backward where the capture has dy."""
    from normbench.errors import UsageError

    cases = []
    for dtype in selection.dtypes:
        for m in layers:
            mode = "fwd+bwd" if m.grad else "fwd"
            for v in variants_for(m, selection, own):
                for b in selection.backends:
                    cases.append(layer_case(m, v, b, dtype, mode, selection.device, m.name))
    cases = filter_cases(cases, selection.pattern)
    if not cases:
        raise UsageError(f"--filter {selection.pattern!r} matches none of the captured layers' "
                         "cases")  # fmt: skip
    return cases


def shape_cases(
    layers: Sequence[LayerMeta], selection: Selection, own: bool
) -> tuple[list[Case], dict[str, list[str]]]:
    """The speed cases at the layers' shapes, each shape once per variant, dtype, mode and
    backend, and the layer names behind each case id."""
    from normbench.errors import UsageError

    cases: dict[str, Case] = {}
    names: dict[str, list[str]] = {}
    for dtype in selection.dtypes:
        for m in layers:
            for v in variants_for(m, selection, own):
                for mode in selection.modes:
                    for b in selection.backends:
                        case = layer_case(m, v, b, dtype, mode, selection.device)
                        cases.setdefault(case.id, case)
                        names.setdefault(case.id, []).append(m.name)
    kept = filter_cases(list(cases.values()), selection.pattern)
    if not kept:
        raise UsageError(f"--filter {selection.pattern!r} matches none of the captured shapes")
    return kept, {c.id: names[c.id] for c in kept}


def compact_names(names: Iterable[str]) -> str:
    """Layer names with one varying number folded into a range:
    'encoder.layer.{0-5}.output.LayerNorm'. Other names are listed as they are."""
    groups: dict[tuple[str, ...], list[tuple[int, ...]]] = {}
    for name in dict.fromkeys(names):
        parts = re.split(r"(\d+)", name)
        template = tuple(p if i % 2 == 0 else "#" for i, p in enumerate(parts))
        groups.setdefault(template, []).append(tuple(int(p) for p in parts[1::2]))
    out = []
    for template, nums in groups.items():
        varying = [i for i in range(len(nums[0])) if len({n[i] for n in nums}) > 1]
        if len(nums) == 1 or len(varying) != 1:
            out += [_fill(template, n) for n in nums]
            continue
        at = varying[0]
        values = sorted({n[at] for n in nums})
        span = (f"{values[0]}-{values[-1]}" if values == list(range(values[0], values[-1] + 1))
                else ",".join(map(str, values)))  # fmt: skip
        out.append(_fill(template, nums[0], at, "{" + span + "}"))
    return ", ".join(out)


def _fill(template: tuple[str, ...], nums: tuple[int, ...], at: int = -1, text: str = "") -> str:
    it = iter(range(len(nums)))
    parts = []
    for p in template:
        if p == "#":
            i = next(it)
            parts.append(text if i == at else str(nums[i]))
        else:
            parts.append(p)
    return "".join(parts)


def with_layers(results: list[CaseResult], names: dict[str, list[str]]) -> list[CaseResult]:
    """Each case's headline note led by the captured layers it stands for."""
    from dataclasses import replace

    out = []
    for r in results:
        layers = names.get(r.case_id)
        if not layers or not r.measurements:
            out.append(r)
            continue
        head = r.measurements[0]
        what = f"{len(layers)} layer{'s' if len(layers) > 1 else ''}: {compact_names(layers)}"
        note = f"{what}; {head.note}" if head.note else what
        out.append(r.replace_measurements([replace(head, note=note), *r.measurements[1:]]))
    return out


def prepare_layer(layer: CapturedLayer, case: Case) -> Prepared | str:
    """The layer's tensors as the gate's Prepared for `case` (its variant's arguments in their
    dtypes, dy where the mode runs backward, the layer's eps), or why they cannot be: a value
    the cast to the case dtype overflows. Replayed as another variant, a layer keeps its x,
    weight and eps; RMSNorm drops a LayerNorm's bias, LayerNorm takes a bias of 0 where the
    layer has none."""
    import torch

    from normbench.dtypes import to_torch
    from normbench.gate import Prepared
    from normbench.variants import get_variant

    variant = get_variant(case.variant)
    dtypes = case.options.dtypes(variant, case.dtype)
    source = {"x": layer.x, "weight": layer.weight, "bias": layer.bias}
    if case.variant == "layernorm" and layer.bias is None and layer.weight is not None:
        source["bias"] = torch.zeros_like(layer.weight)
    inputs: dict[str, torch.Tensor | None] = {}
    for name in case.options.tensor_args(variant):
        t = source.get(name) if case.options.affine or name == "x" else None
        inputs[name] = None if t is None else t.to(to_torch(dtypes[name])).to(case.device)
    dys: tuple[torch.Tensor, ...] = ()
    if case.mode != "fwd":
        assert layer.dy is not None
        dys = (layer.dy.to(to_torch(dtypes["y"])).to(case.device),)
    for name, before, after in [*((k, source[k], inputs[k]) for k in inputs if inputs[k] is not
                                  None), *(("dy", layer.dy, d) for d in dys)]:  # fmt: skip
        lost = torch.isfinite(before).cpu() & ~torch.isfinite(after).cpu()
        if bool(lost.any()):
            top = float(before.detach().double().abs().max())
            return (f"the captured {name} reaches |{name}| = {top:.4g}, past {case.dtype}'s "
                    f"largest {torch.finfo(to_torch(case.dtype)).max:.6g}: the layer cannot run in "
                    f"{case.dtype}")  # fmt: skip
    return Prepared(variant, case, inputs, dys, {"eps": layer.meta.eps}, dtypes)
