"""normbench capture on small randomly initialised models (tests/capture_models.py, no
download): the captured tensors are what the model computed, bitwise; each layer's semantics
(variant, 1 + w, the rounding before w, where the residual add sits) are read right; the file
reads back as it was written and refuses what is not one; the summary's numbers are the ones a
reader recomputes from the tensors."""

from __future__ import annotations

import json
import weakref

import pytest
import torch

from normbench.capture.record import capture_model
from normbench.capture.records import Capture, CapturedLayer, LayerMeta
from normbench.capture.residual import residual_roles
from normbench.capture.store import read_capture, read_meta, write_capture
from normbench.capture.summary import summarize
from normbench.errors import UsageError
from tests import capture_models as cm


def _capture(factory, grads=True, dtype=None):
    model, batch = factory()
    if dtype is not None:
        model = model.to(dtype)
    return model, batch, capture_model(model, batch, label=factory.__name__, grads=grads)


def _trace_grads(model, ids, ys):
    """The model's own forward again, the gradient of the loss at each of `ys`' positions."""
    out = model.trace(ids)
    loss = 0.5 * out[-1].float().pow(2).sum()
    return out, torch.autograd.grad(loss, [out[i] for i in ys])


def _bits(a, b):
    return a.dtype == b.dtype and torch.equal(a.view(torch.uint8), b.view(torch.uint8))


def test_post_ln_capture_is_what_the_model_computed_bitwise():
    model, ids, cap = _capture(cm.post_ln)
    assert cap.complete and [m.name for m in cap.metas] == ["ln1.0", "ln2.0", "ln1.1", "ln2.1"]
    # The trace gives x1, y1, x2, y2 per block: the inputs and outputs of ln1, ln2.
    out, dys = _trace_grads(model, ids, [1, 3, 5, 7])
    for k, layer in enumerate(cap.layers):
        assert _bits(layer.x, out[2 * k].detach()) and _bits(layer.y, out[2 * k + 1].detach())
        assert _bits(layer.dy, dys[k])
        module = model.get_submodule(layer.meta.name)
        assert _bits(layer.weight, module.weight.detach())
        assert _bits(layer.bias, module.bias.detach())
    m = cap.metas[0]
    assert (m.variant, m.cast, m.eps, m.shape, m.dtype) == ("layernorm", "fp32", 1e-12,
                                                            (2, 6, 32), "fp32")  # fmt: skip
    assert [m.residual for m in cap.metas] == ["post"] * 4


def test_pre_rms_capture_and_roles():
    model, ids, cap = _capture(cm.pre_rms)
    names = [m.name for m in cap.metas]
    assert names == ["input_layernorm.0", "post_attention_layernorm.0", "input_layernorm.1",
                     "post_attention_layernorm.1", "norm"]  # fmt: skip
    out, dys = _trace_grads(model, ids, [1, 3, 5, 7, 9])
    for k, layer in enumerate(cap.layers):
        assert _bits(layer.x, out[2 * k].detach()) and _bits(layer.y, out[2 * k + 1].detach())
        assert _bits(layer.dy, dys[k])
        assert layer.bias is None and layer.meta.module == "LlamaRMSNorm"
    assert [m.residual for m in cap.metas] == ["pre"] * 4 + ["final"]
    assert {(m.variant, m.cast, m.eps) for m in cap.metas} == {("rmsnorm", "fp32", 1e-6)}
    assert cap.metas[0].found_by == "class name LlamaRMSNorm"


class _Graph:
    """A stand-in for autograd's graph as torch 2.11 exposes it: a node's Python object is made
    afresh whenever the last one was freed (torch 2.13 keeps one per node), so `is` and ids hold
    only while the walker keeps the objects alive."""

    def __init__(self) -> None:
        self.live: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self.kinds = {"add": type("AddBackward0", (_Obj,), {}),
                      "op": type("MmBackward0", (_Obj,), {})}  # fmt: skip

    def node(self, kind: str, *kids: tuple) -> tuple:
        return (kind, kids)

    def obj(self, node: tuple) -> _Obj:
        o = self.live.get(id(node))
        if o is None:
            o = self.kinds[node[0]](self, node)
            self.live[id(node)] = o
        return o


class _Obj:
    def __init__(self, graph: _Graph, node: tuple) -> None:
        self.graph, self.node = graph, node

    @property
    def next_functions(self) -> tuple:
        return tuple((self.graph.obj(k), 0) for k in self.node[1])


def test_roles_hold_where_torch_remakes_the_graph_nodes_python_objects():
    g = _Graph()
    h = g.node("op")  # the embedding
    xs, ys = [], []
    for _ in range(6):  # Pre-LN: h = h + f(norm(h)), then a final norm
        y = g.node("op", h)
        xs.append(h), ys.append(y)
        h = g.node("add", h, g.node("op", g.node("op", y)))
    xs.append(h), ys.append(g.node("op", h))
    x_objs, y_objs = [g.obj(n) for n in xs], [g.obj(n) for n in ys]  # held, as capture does
    roles = residual_roles(x_objs, y_objs, [y_objs[-1], *y_objs])
    assert roles == ["pre"] * 6 + ["final"]


class _OnTheInput(torch.nn.Module):
    """Pre-LN blocks on a float input batch (no embedding): the first norm's x is the batch,
    a tensor with no graph node, and the last block writes into its input in place."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.norms = torch.nn.ModuleList(torch.nn.RMSNorm(dim, eps=1e-6) for _ in range(2))
        self.fcs = torch.nn.ModuleList(torch.nn.Linear(dim, dim) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.fcs[0](self.norms[0](x))
        return x.add_(self.fcs[1](self.norms[1](x)))


@pytest.mark.parametrize("as_batch", [lambda x: x, lambda x: (x,), lambda x: {"x": x}])
def test_a_norm_on_the_models_own_input_is_pre(as_batch):
    # It was "unknown": the batch has no grad_fn, so the add's operand could not be matched.
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16)
    model = _OnTheInput()
    cap = capture_model(model, as_batch(x), label="on-the-input")
    assert [m.residual for m in cap.metas] == ["pre", "pre"]
    assert _bits(cap.layers[0].x, x) and not x.requires_grad  # the batch itself is untouched
    with torch.no_grad():
        assert _bits(cap.layers[0].y, model.norms[0](x))


@pytest.mark.parametrize("eps, rows, why", [
    (-1e-3, 2, "eps -0.001 is not a finite number of 0 or more"),
    (float("nan"), 2, "eps nan is not a finite number of 0 or more"),
    (1e-6, 0, "its input is empty (shape (0, 3, 16)): nothing to replay"),
])  # fmt: skip
def test_a_layer_the_replay_would_refuse_is_not_captured(eps, rows, why):
    # A negative eps crashed the summary (sqrt); NaN eps and an empty batch were written to a
    # file that `stability --inputs` then refused.
    model = torch.nn.Sequential(torch.nn.RMSNorm(16, eps=1e-6), torch.nn.RMSNorm(16, eps=eps))
    cap = capture_model(model, torch.randn(rows, 3, 16), label="bad")
    kept = ["0"] if rows else []  # an empty batch: neither layer has anything to replay
    assert [m.name for m in cap.metas] == kept and list(cap.ignored)[-1] == f"1: {why}"


def test_bf16_llama_rounds_before_the_weight_and_gemma_applies_one_plus_w():
    _, _, llama = _capture(cm.pre_rms, grads=False, dtype=torch.bfloat16)
    assert {(m.variant, m.cast, m.dtype) for m in llama.metas} == {("rmsnorm", "llama", "bf16")}
    for factory in (cm.pre_gemma,):
        for dtype in (None, torch.bfloat16):
            _, _, cap = _capture(factory, grads=False, dtype=dtype)
            assert {(m.variant, m.cast) for m in cap.metas} == {("rmsnorm", "gemma")}
            assert cap.metas[0].norm == "rmsnorm (1 + w)"


def test_a_model_without_a_norm_and_a_batch_that_does_not_fit():
    model, batch = cm.no_norm()
    with pytest.raises(UsageError, match="has no normalization layer"):
        capture_model(model, batch, label="tiny")
    model, batch = cm.wrong_batch()
    cap = capture_model(model, batch, label="breaks")
    assert not cap.complete and "mat1 and mat2 shapes cannot be multiplied" in cap.error
    assert [m.name for m in cap.metas] == ["ln1.0"]  # what ran before the failure is kept


def test_file_round_trip_and_refusals(tmp_path):
    _, _, cap = _capture(cm.post_ln)
    path = write_capture(cap, tmp_path / "c.safetensors")
    back = read_capture(path)
    assert back.metas == cap.metas and back.model == cap.model and back.loss == cap.loss
    for a, b in zip(cap.layers, back.layers):
        assert a.tensors().keys() == b.tensors().keys()
        assert all(_bits(a.tensors()[k], b.tensors()[k]) for k in a.tensors())
    assert read_meta(path).layers == cap.metas
    with pytest.raises(UsageError, match="the file exists"):
        write_capture(cap, path)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UsageError, match="not a safetensors file"):
        read_meta(text, "--inputs")
    import safetensors.torch

    weights = tmp_path / "weights.safetensors"
    safetensors.torch.save_file({"w": torch.ones(3)}, str(weights))
    with pytest.raises(UsageError, match="without normbench capture metadata"):
        read_capture(weights, "--shapes-from")
    with pytest.raises(UsageError, match="no such file"):
        read_meta(tmp_path / "missing.safetensors")


def _with_header(tmp_path, name: str, field: str, value):
    """A capture of post_ln whose header's first layer says `field` is `value`."""
    import safetensors.torch

    _, _, cap = _capture(cm.post_ln, grads=False)
    header = cap.header()
    header["layers"][0][field] = value
    tensors = {f"layer{layer.meta.index}.{k}": t for layer in cap.layers
               for k, t in layer.tensors().items()}  # fmt: skip
    path = tmp_path / f"{name}.safetensors"
    safetensors.torch.save_file(tensors, str(path), metadata={"normbench": json.dumps(header)})
    return path


def test_a_header_that_lies_about_a_shape_is_refused(tmp_path):
    path = _with_header(tmp_path, "lies", "shape", [2, 6, 16])
    with pytest.raises(UsageError, match=r"layer0.x has shape \(2, 6, 32\), its header says"):
        read_meta(path)


@pytest.mark.parametrize("eps", [-1.0, float("nan"), float("inf")])
def test_a_header_with_an_eps_no_model_has_is_refused(tmp_path, eps):
    # -1 ended in a traceback (a math domain error in the summary); NaN made every output NaN
    # on both sides, and the layer PASSed.
    path = _with_header(tmp_path, "eps", "eps", eps)
    with pytest.raises(UsageError, match=r"layer 0 \(.*\) has eps"):
        read_meta(path)


def _layer(x, name="l", gemma=False, eps=1e-6):
    meta = LayerMeta(0, name, "test", "test", "rmsnorm", eps, "gemma" if gemma else "fp32",
                     "unknown", tuple(x.shape), "fp64", "fp64")  # fmt: skip
    return CapturedLayer(meta, x, x, torch.ones(x.shape[-1], dtype=x.dtype))


def test_summary_numbers_recomputed_from_the_tensor():
    _, _, cap = _capture(cm.post_ln)
    for layer in cap.layers:
        s = summarize(layer)
        x = layer.x.double().reshape(-1, layer.x.shape[-1])
        assert (s.rows, s.dim) == (12, 32) and s.max_abs == float(x.abs().max())
        energy = (x * x).sum(0)
        share, chan = torch.sort(energy / energy.sum(), descending=True)
        assert [c for c, _ in s.top] == chan[:3].tolist()
        assert [v for _, v in s.top] == pytest.approx(share[:3].tolist(), rel=1e-12)
        ratio = (x.mean(-1).abs() / x.std(-1, unbiased=False)).median()
        assert s.mean_std == pytest.approx(float(ratio), rel=1e-12)
        assert s.nonfinite == 0


@pytest.mark.parametrize("dist", ["massive", "offset", "large", "tiny", "constant", "zero", "nan"])
def test_a_synthetic_input_is_nearest_to_itself(dist):
    from normbench.inputs import get_distribution

    # Another seed than the reference sample's, at the stability suite's shapes.
    x = get_distribution(dist).sample((16, 256), torch.Generator().manual_seed(5))
    s = summarize(_layer(x))
    assert s.nearest == dist, s.features


def test_gemma_layer_is_nearest_to_gemma_weight():
    x = torch.randn(16, 256, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert summarize(_layer(x, gemma=True)).nearest == "gemma-weight"
    assert summarize(_layer(x)).nearest == "normal"


def test_capture_header_is_plain_json():
    cap = Capture("m", "b", ())
    assert json.loads(json.dumps(cap.header()))["format"] == "normbench-capture"
