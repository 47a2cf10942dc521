"""Running a model once on its batch with hooks on every norm, and recording what each call
saw (docs/capture.md "What each layer records").

Each norm gets a forward pre-hook (a copy of its input, taken before the module runs, so a
later in-place op cannot change it) and a forward hook (a copy of its output). The model runs
in eval mode with autograd on, every floating parameter requiring grad for the duration (their
flags are put back after), so the graph says where each residual add sits and, with --grads,
carries the gradient of LOSS back to every norm's output. A forward that raises keeps the
calls that finished before it (Capture.complete False, the error in words).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from normbench.capture.find import EPS_ATTRS, Found, eps_of, find_norms, parameters, semantics
from normbench.capture.records import (
    LOSS,
    Capture,
    CapturedLayer,
    LayerMeta,
    dtype_name,
    is_eps,
)
from normbench.capture.residual import residual_roles
from normbench.errors import UsageError, describe_error

if TYPE_CHECKING:
    import torch


@dataclass
class _Call:
    found: Found
    name: str
    # The graph node of the tensor the module was given, read when it was given: an in-place
    # op after the norm (x.add_(f(norm(x)))) makes the tensor's grad_fn that op's node.
    x_node: Any
    x: Any  # a copy of the tensor
    y_ref: Any = None
    y: Any = None


def call_model(model: Any, batch: Any) -> Any:
    """A dict batch is passed by keyword, a tuple or list by position, anything else alone."""
    if isinstance(batch, dict):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def traced_batch(batch: Any) -> Any:
    """The batch with each floating tensor that builds no graph (the model's own input, not an
    embedding's output) replaced by a clone of a leaf that does: a norm applied straight to it
    (`x + f(norm(x))`) then shows its input in the graph, where the residual roles are read.
    The clone, not the leaf, so a model that writes into its input in place still may. Same
    values, same dtype; a dict's, tuple's or list's items, one level deep."""
    import torch

    def one(v: Any) -> Any:
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not v.requires_grad:
            return v.detach().requires_grad_(True).clone()
        return v

    if isinstance(batch, dict):
        return {k: one(v) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return [one(v) for v in batch]  # passed by position either way (call_model)
    return one(batch)


def first_tensor(value: Any) -> Any:
    """The first floating tensor in a model's output (a tensor, a tuple, a dict or a Hugging
    Face ModelOutput, searched in order), or None."""
    import torch

    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else None
    items = value.values() if isinstance(value, dict) else value
    if isinstance(value, (dict, tuple, list)) or hasattr(value, "values"):
        for item in items if not hasattr(value, "to_tuple") else value.to_tuple():
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def _tensor_arg(args: tuple, kwargs: dict) -> Any:
    import torch

    for v in (*args, *kwargs.values()):
        if isinstance(v, torch.Tensor):
            return v
    return None


class _Hooks:
    """The pre- and post-hooks on every found norm, and the calls they recorded."""

    def __init__(self, norms: list[Found]) -> None:
        self.calls: list[_Call] = []
        self.ignored: list[str] = []
        self._pending: dict[int, _Call] = {}
        self._count: dict[str, int] = {}
        self._handles = []
        for f in norms:
            self._handles.append(f.module.register_forward_pre_hook(self._pre(f), with_kwargs=True))
            self._handles.append(f.module.register_forward_hook(self._post(f), with_kwargs=True))

    def _pre(self, found: Found):
        def hook(module: Any, args: tuple, kwargs: dict) -> None:
            x = _tensor_arg(args, kwargs)
            if x is None or not x.is_floating_point() or x.dim() < 1:
                return
            k = self._count[found.name] = self._count.get(found.name, 0) + 1
            name = found.name if k == 1 else f"{found.name}#{k}"
            self._pending[id(module)] = _Call(found, name, x.grad_fn, x.detach().clone())

        return hook

    def _post(self, found: Found):
        import torch

        def hook(module: Any, args: tuple, kwargs: dict, out: Any) -> None:
            call = self._pending.pop(id(module), None)
            if call is None:
                return
            if not isinstance(out, torch.Tensor):
                self.ignored.append(f"{call.name}: returns a {type(out).__name__}, not a tensor")
                return
            call.y_ref, call.y = out, out.detach().clone()
            self.calls.append(call)

        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def _layer(i: int, call: _Call, role: str) -> CapturedLayer | str:
    """The call as a captured layer, or why it is not one."""
    x, y = call.x, call.y
    if x.numel() == 0:
        return f"{call.name}: its input is empty (shape {tuple(x.shape)}): nothing to replay"
    if tuple(y.shape) != tuple(x.shape):
        return f"{call.name}: output shape {tuple(y.shape)} differs from its input's"
    w, b, why = parameters(call.found, x.shape[-1])
    if why:
        return f"{call.name}: {why}"
    eps = eps_of(call.found, x)
    if eps is None:
        return f"{call.name}: no eps attribute ({', '.join(EPS_ATTRS)})"
    if not is_eps(eps):  # the replay refuses it: not recorded, so no file it cannot read
        return f"{call.name}: eps {eps!r} is not a finite number of 0 or more"
    w = None if w is None else w.detach().clone().cpu()
    b = None if b is None else b.detach().clone().cpu()
    found = semantics(call.found, x.cpu(), w, b, eps, y.cpu())
    if isinstance(found, str):
        return f"{call.name}: {found}"
    variant, cast = found
    meta = LayerMeta(
        index=i, name=call.name, module=call.found.class_name, found_by=call.found.found_by,
        variant=variant, eps=eps, cast=cast, residual=role, shape=tuple(x.shape),
        dtype=dtype_name(x.dtype), weight_dtype=None if w is None else dtype_name(w.dtype),
        bias=b is not None,
    )  # fmt: skip
    return CapturedLayer(meta, x.cpu(), y.cpu(), w, b)


def _grads(top: Any, calls: list[_Call]) -> list[torch.Tensor | None]:
    """dy at every norm's output from LOSS, `top` the model output's first floating tensor;
    raises UsageError when the output has no graph."""
    import torch

    if top is None or top.grad_fn is None:
        raise UsageError("--grads: the model's output has no floating tensor that depends on "
                         "its norms, so there is no gradient to record")  # fmt: skip
    loss = 0.5 * top.float().pow(2).sum()
    return list(torch.autograd.grad(loss, [c.y_ref for c in calls], allow_unused=True))


def capture_model(model: Any, batch: Any, *, label: str, batch_note: str = "",
                  grads: bool = False) -> Capture:  # fmt: skip
    """Run `model` on `batch` and record every norm call (see the module docstring). Raises
    UsageError when the model has no norm, or none of its norms ran."""
    import torch

    norms = find_norms(model)
    if not norms:
        raise UsageError(
            f"{label} has no normalization layer normbench recognizes (torch.nn.LayerNorm, "
            "torch.nn.RMSNorm, or a class named *RMSNorm or *LayerNorm; see docs/capture.md)"
        )
    model.eval()
    params = [p for p in model.parameters() if p.is_floating_point()]
    flags = [p.requires_grad for p in params]
    hooks = _Hooks(norms)
    out, error = None, None
    try:
        for p in params:
            p.requires_grad_(True)
        with torch.enable_grad():
            try:
                out = call_model(model, traced_batch(batch))
            except Exception as exc:  # the batch does not fit: keep what ran before
                error = f"the batch does not fit the model ({describe_error(exc)})"
        calls = hooks.calls
        top = first_tensor(out)  # None where the forward raised
        dys: list[Any] = [None] * len(calls)
        if grads and error is None and calls:
            try:
                dys = _grads(top, calls)
            except UsageError:
                raise
            except Exception as exc:
                error = f"the backward of the loss failed ({describe_error(exc)})"
        roots = [getattr(top, "grad_fn", None)]
        roots += [getattr(c.y_ref, "grad_fn", None) for c in calls]
        roles = residual_roles(
            [c.x_node for c in calls],
            [getattr(c.y_ref, "grad_fn", None) for c in calls],
            roots,
        )
    finally:
        hooks.remove()
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
    if not calls and error is None:
        raise UsageError(f"none of the {len(norms)} norm layers of {label} ran on the batch")
    layers, ignored = [], list(hooks.ignored)
    for call, role, dy in zip(calls, roles, dys):
        got = _layer(len(layers), call, role)
        if isinstance(got, str):
            ignored.append(got)
            continue
        layers.append(_with_grad(got, dy, grads and error is None))
    return Capture(
        model=label, batch=batch_note, layers=tuple(layers), loss=LOSS if grads else None,
        complete=error is None, error=error, ignored=tuple(ignored),
        extra={"torch": torch.__version__, "calls": len(calls)},
    )  # fmt: skip


def _with_grad(layer: CapturedLayer, dy: Any, grads: bool) -> CapturedLayer:
    from dataclasses import replace

    import torch

    if not grads:
        return layer
    note = ""
    if dy is None:  # the output never reaches the loss
        dy = torch.zeros_like(layer.y)
        note = "its output does not reach the loss: dy is 0"
    meta = replace(layer.meta, grad=True, note=note)
    return replace(layer, meta=meta, dy=dy.detach().clone().cpu())
