"""A capture replayed: `stability --inputs` judges each layer as `check_case` judges the same
tensors; `speed --shapes-from` runs the model's own shapes once each, the layer names in the
note; the commands refuse bad input in one sentence with exit code 2 (docs/capture.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from normbench.capture.cases import compact_names, shape_cases, with_layers
from normbench.capture.records import Capture, CapturedLayer, LayerMeta
from normbench.capture.selection import captured_selection, replay_config
from normbench.capture.store import write_capture
from normbench.cli import app
from normbench.config_args import SPEED_DEFAULTS, SelectionArgs
from normbench.errors import UsageError
from normbench.results import Measurement
from normbench.results.stability import StabilityResult
from normbench.suites.stability import check_case, run_stability
from tests import capture_models as cm

runner = CliRunner()
ROWS, DIM, SEED = 4, 300, 0


def synthetic_layer(index: int, variant: str, dist: str) -> CapturedLayer:
    """The tensors check_case makes for (variant, dist) at ROWS x DIM, in fp64, as a layer: x
    and the parameters from make_tensors, dy as gate.prepare draws it."""
    from normbench.inputs import make_tensors
    from normbench.variants import Shape, get_variant

    v = get_variant(variant)
    shape = Shape(1, ROWS, DIM)
    t = make_tensors(v, shape, SEED, dist)
    g = torch.Generator().manual_seed(SEED + 7)
    dy = torch.randn(shape.dims, generator=g, dtype=torch.float64)
    meta = LayerMeta(index, f"{variant}-{dist}", "synthetic", "test", variant, v.scalars["eps"],
                     "fp32", "unknown", shape.dims, "fp64", "fp64", bias=t.get("bias") is not None,
                     grad=True)  # fmt: skip
    return CapturedLayer(meta, t["x"], t["x"], t["weight"], t.get("bias"), dy)


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory):
    layers = [synthetic_layer(i, v, d) for i, (v, d) in enumerate(
        [("rmsnorm", "large"), ("rmsnorm", "massive"), ("layernorm", "offset"),
         ("layernorm", "normal")])]  # fmt: skip
    path = tmp_path_factory.mktemp("cap") / "synthetic.safetensors"
    return write_capture(Capture("synthetic", "check_case's tensors", tuple(layers)), path)


@pytest.fixture
def fp16_square():
    """The broken `(x * x).float()` RMSNorm of tests/stability_fixtures.py, for this test only."""
    from normbench.registry import register_backend, unregister_backend
    from tests.stability_fixtures import NAME, broken_backend

    register_backend(broken_backend(), origin="tests")
    yield NAME
    unregister_backend(NAME)


def test_replay_verdicts_match_check_case(synthetic_file, tmp_path, fp16_square):
    args = SelectionArgs(backend=["eager,composite,fp16_square"], dtype=["fp16,bf16"])
    config = replay_config(args, synthetic_file, determinism=False, out=tmp_path, formats=())
    run = run_stability(config)
    judged = [r for r in run.of(StabilityResult) if r.verdict.judged]
    assert len(judged) == 2 * (2 * 3 + 2 * 2)  # fp16_square has no layernorm: skipped
    assert {r.verdict.value for r in judged} >= {"PASS", "FAIL"}
    for r in judged:
        variant, dist = r.dist.split("-", 1)
        want = check_case(r.backend, variant, r.dtype, dist, dim=DIM, rows=ROWS, seed=SEED)
        assert r.verdict.value == want.verdict, (r.case_id, r.reason, want.reason)
        w = want.worst_check
        assert (r.tensor, r.max_ulp, r.tol_ratio) == (w.name, w.max_ulp, w.error.worst_ratio)
        # A PASS reads as check_case's; a failure has its symptom, led by what the layer holds
        # (check_case leads with the distribution's trap).
        reason = r.reason
        if want.verdict == "PASS":
            assert reason == want.reason
        else:
            assert reason.endswith(w.symptom) and want.reason.endswith(w.symptom)
    square = next(r for r in judged if r.backend == "fp16_square" and r.dtype == "fp16"
                  and r.dist == "rmsnorm-large")  # fmt: skip
    assert square.verdict.value == "FAIL" and "silently zero" in square.reason
    assert square.reason.startswith("|x| reaches 943.6 (>= 256: its fp16 square overflows): rows")


def test_replay_judges_a_forward_only_kernel_forward(synthetic_file, tmp_path):
    # It was "not run: ... has no fwd+bwd" on every captured layer, as stability was before.
    from normbench.backends.base import backend_from_functions
    from normbench.registry import register_backend, unregister_backend

    def rms(x, weight, eps):
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)

    register_backend(backend_from_functions("infer_only", {"rmsnorm": rms}, modes=("fwd",)))
    try:
        args = SelectionArgs(backend=["infer_only"], dtype=["fp16"])
        config = replay_config(args, synthetic_file, determinism=False, out=tmp_path, formats=())
        judged = [r for r in run_stability(config).of(StabilityResult) if r.verdict.judged]
    finally:
        unregister_backend("infer_only")
    assert {(r.dist, r.mode) for r in judged} == {("rmsnorm-large", "fwd"),
                                                  ("rmsnorm-massive", "fwd")}  # fmt: skip
    assert {r.verdict.value for r in judged} == {"PASS"}


def test_replay_of_a_model_capture(tmp_path):
    model, ids = cm.pre_gemma()
    from normbench.capture.record import capture_model

    cap = capture_model(model, ids, label="gemma", grads=True)
    path = write_capture(cap, tmp_path / "g.safetensors")
    args = SelectionArgs(backend=["eager,gemma"], dtype=["bf16"])
    run = run_stability(replay_config(args, path, out=tmp_path, formats=()))
    rows = run.of(StabilityResult)
    eager = [r for r in rows if r.backend == "eager"]
    assert all(r.verdict.value == "skipped" and "applies (1 + w)" in r.reason for r in eager)
    gemma = [r for r in rows if r.backend == "gemma"]
    assert len(gemma) == 5 and all(r.verdict.value == "PASS" for r in gemma)
    assert all(r.mode == "fwd+bwd" and r.shape.rows == 12 for r in gemma)
    assert any("Every judged implementation PASSes" in f.text for f in run.findings)
    # The reports carry the layers' summary and read back as the same results.
    from normbench.report import write_reports
    from normbench.report.tables import tables
    from normbench.results import load_run
    from normbench.results.capture import CapturedLayerResult

    back = load_run(write_reports(run, tmp_path, ("json",))["json"])
    layers = back.of(CapturedLayerResult)
    assert [r.layer for r in layers] == [m.name for m in cap.metas]
    assert layers[0].cast == "gemma" and layers[-1].residual == "final"
    assert layers[0].value("max_abs") == float(cap.layers[0].x.abs().max())
    titles = [t for t, _, _ in tables(back)]
    assert (
        titles[0] == "captured layers: what each norm saw" and len(back.of(StabilityResult)) == 10
    )


def test_shapes_from_runs_each_shape_once_with_its_layers(tmp_path):
    from normbench.capture.record import capture_model

    model, ids = cm.post_ln()
    path = write_capture(capture_model(model, ids, label="post"), tmp_path / "p.safetensors")
    args = SelectionArgs(backend=["eager,composite"], device="cpu")
    sel, own, meta = captured_selection(args, path, "--shapes-from", SPEED_DEFAULTS)
    assert own and sel.variants == ("layernorm",) and sel.dtypes == ("fp32",)
    cases, names = shape_cases(meta.layers, sel, own)
    assert [c.id for c in cases] == ["layernorm/eager/fp32/2x6x32/fwd",
                                     "layernorm/composite/fp32/2x6x32/fwd"]  # fmt: skip
    assert names[cases[0].id] == ["ln1.0", "ln2.0", "ln1.1", "ln2.1"]
    r = StabilityResult.of_case(cases[0], [Measurement("time", 1.0, "ms", note="hot")])
    (noted,) = with_layers([r], names)
    assert noted.note == "4 layers: ln1.0, ln2.0, ln1.1, ln2.1; hot"
    with pytest.raises(UsageError, match="--dim cannot be combined with --shapes-from"):
        captured_selection(SelectionArgs(dim=["64"]), path, "--shapes-from", SPEED_DEFAULTS)


def test_compact_names():
    names = [f"encoder.layer.{i}.output.LayerNorm" for i in range(6)]
    assert compact_names(names) == "encoder.layer.{0-5}.output.LayerNorm"
    assert compact_names(["a.0.n", "a.2.n", "emb"]) == "a.{0,2}.n, emb"
    assert compact_names(["x.1.y.1", "x.2.y.2"]) == "x.1.y.1, x.2.y.2"


def test_cli_capture_and_bad_input(tmp_path):
    out = tmp_path / "pre.safetensors"
    ok = runner.invoke(app, ["capture", "tests/capture_models.py:pre_rms", "--out", str(out),
                             "--grads", "--format", "md"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "captured layers" in ok.output and "final" in ok.output
    assert out.exists() and (tmp_path / "pre-summary.md").exists()
    again = runner.invoke(app, ["capture", "tests/capture_models.py:pre_rms", "--out", str(out)])
    assert again.exit_code == 2 and "never overwrites" in again.output
    # `--out -` wrote files named '-' and '--summary.*' into the working directory.
    dash = runner.invoke(app, ["capture", "tests/capture_models.py:pre_rms", "--out", "-"])
    assert dash.exit_code == 2 and "a capture is written to a file, not to stdout" in dash.output
    assert not Path("-").exists() and not list(Path(".").glob("--summary.*"))
    bad = {
        "tests/capture_models.py:nothing": "has no 'nothing'",
        "tests/capture_models.py:no_norm": "has no normalization layer",
        "no/such/file.py:make": "does not exist",
        "no_such_package_xyz": "neither a folder",
    }
    for spec, words in bad.items():
        r = runner.invoke(app, ["capture", spec, "--out", str(tmp_path / "x.safetensors")])
        assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output, r.output
    partial = tmp_path / "partial.safetensors"
    r = runner.invoke(app, ["capture", "tests/capture_models.py:wrong_batch", "--out",
                            str(partial), "--format", "none"])  # fmt: skip
    assert r.exit_code == 2 and "the batch does not fit the model" in r.output
    assert "the 1 layer captured before it are in" in r.output and partial.exists()
    text = tmp_path / "t.txt"
    text.write_text("x")
    for cmd in (["stability", "--inputs", str(text)], ["speed", "--shapes-from", str(text)]):
        r = runner.invoke(app, [*cmd, "--format", "none"])
        assert r.exit_code == 2 and "not a safetensors file" in r.output, r.output
    refused = {
        ("--dist", "large"): "--dist cannot be combined with --inputs",
        ("--variant", "dyt"): "--variant dyt: a captured layer is replayed as layernorm or",
        ("--filter", "("): "is not a valid regular expression",
        ("--dim", "64"): "--dim cannot be combined with --inputs",
        # The layer options were dropped without a word: the results were the same.
        ("--no-weight",): "--no-weight cannot be combined with --inputs: each captured layer",
        ("--weight-dtype", "bf16"): "--weight-dtype cannot be combined with --inputs",
        ("--rms-bias",): "--rms-bias cannot be combined with --inputs",
    }
    for extra, words in refused.items():
        r = runner.invoke(app, ["stability", "--inputs", str(out), *extra, "--format", "none"])
        assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output, r.output
