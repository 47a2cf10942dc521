"""Layer options (normbench.options) through cases, the gate, the suites and the CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from normbench.cases import Case, expand
from normbench.cli import app
from normbench.errors import UsageError
from normbench.gate import check, oracle, prepare
from normbench.options import NormOptions, check_options, ideal_bytes
from normbench.registry import get_backend
from normbench.suites.memory import ideal_memory
from normbench.suites.stability import check_case
from normbench.variants import Shape, get_variant
from normbench.verdicts import PASS
from tests.kernel_reference import needs_interpreter

runner = CliRunner()
RES32 = NormOptions(residual_dtype="fp32")


def test_found_the_issue_command_passes_for_the_triton_kernels():
    # `stability --backend triton --dtype fp16,bf16 --variant add_layernorm --dist offset` FAILed
    # with dweight up to 2,883x over tolerance at N = 1000, 4096, 8192.
    for dtype in ("fp16", "bf16"):
        for dim in (1000, 4096):
            v = check_case("triton", "add_layernorm", dtype, "offset", dim=dim)
            assert v.verdict == PASS, (dtype, dim, v.reason)


def test_options_suffix_the_case_id_and_drop_where_meaningless():
    opts = NormOptions(weight_dtype="fp32", residual_dtype="fp32", bias=True)
    cases = expand(
        ["rmsnorm", "add_layernorm", "batchnorm"], ["triton"], ["bf16"],
        [Shape(1, 4, 256), Shape(1, 4, 64, heads=8)], ["fwd"], "cpu", options=opts,
    )  # fmt: skip
    ids = [c.id for c in cases]
    assert "rmsnorm/triton/bf16/1x4x256/fwd/w=fp32,bias" in ids
    assert "add_layernorm/triton/bf16/1x4x256/fwd/w=fp32,res=fp32" in ids
    assert "rmsnorm/triton/bf16/1x4x8x64/fwd/w=fp32,bias" in ids  # QK-norm shape
    assert not any(i.startswith("batchnorm") and "x8x" in i for i in ids)  # no heads there
    assert Case("rmsnorm", "eager", "bf16", Shape(1, 4, 256), "fwd").id.count("/") == 4


def test_options_that_fit_no_selected_variant_are_refused():
    with pytest.raises(UsageError, match="--residual-dtype applies to add_rmsnorm"):
        check_options(RES32, ("rmsnorm",), (1,))
    with pytest.raises(UsageError, match="--heads applies to"):
        check_options(NormOptions(), ("batchnorm",), (8,))
    with pytest.raises(UsageError, match="--no-weight leaves no weight"):
        NormOptions(affine=False, weight_dtype="fp32")
    with pytest.raises(UsageError, match="unknown dtype"):
        NormOptions(residual_dtype="fp8")


@needs_interpreter
def test_prepare_makes_each_tensor_in_its_own_dtype_and_shape():
    v = get_variant("add_rmsnorm")
    case = Case(
        "add_rmsnorm", "triton", "bf16", Shape(1, 4, 64, heads=4), "fwd+bwd",
        options=NormOptions(weight_dtype="fp32", residual_dtype="fp32", bias=True),
    )  # fmt: skip
    p = prepare(v, case)
    assert p.inputs["x"].dtype == torch.bfloat16 and p.inputs["x"].shape == (1, 4, 4, 64)
    assert p.inputs["residual"].dtype == torch.float32
    assert p.inputs["weight"].shape == (4, 64) and p.inputs["weight"].dtype == torch.float32
    assert p.inputs["bias"].shape == (4, 64)
    ref, native = oracle(p, get_backend("triton").semantics_for("add_rmsnorm"), True)
    assert native["residual_out"].dtype == torch.float32 and native["y"].dtype == torch.bfloat16
    assert native["dweight"].dtype == torch.float32 and native["dx"].dtype == torch.bfloat16
    gate = check(get_backend("triton").build(v, case), p, get_backend("triton").semantics_for(
        "add_rmsnorm"), True)  # fmt: skip
    assert gate.ok, gate.note
    nw = prepare(get_variant("layernorm"), Case("layernorm", "triton", "fp16", Shape(1, 4, 64),
                 "fwd", options=NormOptions(affine=False)))  # fmt: skip
    assert nw.inputs["weight"] is None and nw.inputs["bias"] is None


@needs_interpreter
def test_backends_skip_options_they_do_not_take_with_the_reason():
    case = Case("add_rmsnorm", "eager", "bf16", Shape(1, 4, 64), "fwd", options=RES32)
    assert get_backend("eager").supports(case) == "eager does not take an fp32 residual"
    assert get_backend("triton").supports(case) is None
    heads = Case("rmsnorm", "composite", "bf16", Shape(1, 4, 64, heads=2), "fwd")
    assert "per-head weight" in get_backend("composite").supports(heads)
    nw = Case("rmsnorm", "eager", "bf16", Shape(1, 4, 64), "fwd", options=NormOptions(affine=False))
    assert get_backend("eager").supports(nw) is None


@needs_interpreter
@pytest.mark.parametrize(
    "options",
    [NormOptions(affine=False), NormOptions(weight_dtype="fp32", bias=True), RES32],
    ids=["no-weight", "w32-bias", "res32"],
)
def test_every_option_passes_the_stability_gate_on_hard_inputs(options):
    from normbench.gate import prepare as prep
    from normbench.suites.stability import evaluate

    for variant in ("add_rmsnorm", "add_layernorm"):
        opts = options.for_case(variant, "bf16")
        for dist in ("offset", "massive", "inf"):
            case = Case(variant, "triton", "bf16", Shape(1, 4, 1000), "fwd+bwd", "cpu", dist, opts)
            v = evaluate(
                get_backend("triton"), get_variant(variant), prep(get_variant(variant), case)
            )
            assert v.verdict == PASS, (variant, dist, v.reason)


def test_ideal_bytes_count_each_tensor_at_its_width():
    v = get_variant("add_rmsnorm")
    shape = Shape(2, 8, 1024)
    el = shape.rows * shape.dim
    plain = Case("add_rmsnorm", "triton", "bf16", shape, "fwd")
    res32 = Case("add_rmsnorm", "triton", "bf16", shape, "fwd", options=RES32)
    # read x (2), r (4); write y (2), residual out (4) per element, plus the weight
    assert ideal_bytes(v, plain) == 4 * 2 * el + 2 * 1024
    assert ideal_bytes(v, res32) == (2 + 4 + 2 + 4) * el + 2 * 1024
    bwd = Case("add_rmsnorm", "triton", "bf16", shape, "bwd", options=RES32)
    bwd_plain = Case("add_rmsnorm", "triton", "bf16", shape, "bwd")
    # s and d(residual out) in fp32, and d(residual) written apart in fp32
    assert ideal_bytes(v, bwd) - ideal_bytes(v, bwd_plain) == 2 * 2 * el + 4 * el
    # the saved activation is the residual output, in fp32
    assert ideal_memory(v, res32).saved == 4 * el + 4 * shape.rows


@needs_interpreter
def test_cli_stability_with_options_end_to_end(tmp_path):
    args = [
        "stability", "--variant", "add_rmsnorm,rmsnorm", "--backend", "triton,eager",
        "--dtype", "bf16", "--dim", "256", "--dist", "normal,offset", "--residual-dtype", "fp32",
        "--weight-dtype", "fp32", "--fail-on", "FAIL", "--out", str(tmp_path),
        "--format", "csv,json",
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "add_rmsnorm (w=fp32,res=fp32)" in result.output
    df = pd.read_csv(next(tmp_path.glob("*.csv")))
    verdicts = df[df.metric == "verdict"]
    triton = verdicts[verdicts.backend == "triton"]
    assert set(triton.status) == {"ok"} and len(triton) == 4
    assert "add_rmsnorm/triton/bf16/1x4x256/fwd+bwd/w=fp32,res=fp32" in set(triton.case_id)
    eager = verdicts[(verdicts.backend == "eager") & (verdicts.variant == "add_rmsnorm")]
    assert set(eager.status) == {"skipped"} and eager.note.str.contains("fp32 residual").all()
    run = json.loads(next(tmp_path.glob("*.json")).read_text())
    opts = run["config"]["selection"]["options"]
    assert opts["weight_dtype"] == "fp32" and opts["residual_dtype"] == "fp32"


@needs_interpreter
def test_cli_heads_and_bad_options(tmp_path):
    ok = runner.invoke(app, ["stability", "--variant", "rmsnorm", "--backend", "triton",
                             "--dtype", "fp16", "--dim", "64", "--heads", "4", "--dist", "normal",
                             "--out", str(tmp_path), "--format", "none"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "PASS" in ok.output
    bad = runner.invoke(app, ["stability", "--variant", "rmsnorm", "--residual-dtype", "fp32"])
    assert bad.exit_code == 2 and "--residual-dtype applies to" in bad.output
    bad = runner.invoke(app, ["speed", "--variant", "rmsnorm", "--heads", "0"])
    assert bad.exit_code == 2 and "--heads must be a positive integer" in bad.output


def test_no_weight_runs_backward_in_speed_and_memory(tmp_path):
    # weight=None leaves were handed to autograd.grad and the saved-tensor recorder.
    args = ["--variant", "rmsnorm,layernorm", "--backend", "eager,triton", "--dtype", "fp32",
            "--dim", "64", "--batch", "1", "--seq", "16", "--no-weight", "--out", str(tmp_path),
            "--format", "csv"]  # fmt: skip
    speed = runner.invoke(app, ["speed", *args, "--mode", "bwd,fwd+bwd", "--quick",
                                "--time-budget", "0.05"])  # fmt: skip
    assert speed.exit_code == 0, speed.output
    memory = runner.invoke(app, ["memory", *args])
    assert memory.exit_code == 0, memory.output
    for f in tmp_path.glob("*.csv"):
        df = pd.read_csv(f)
        assert not (df.status == "error").any(), df[df.status == "error"].note.tolist()


@needs_interpreter
def test_memory_with_heads_is_measured_against_its_own_ideal():
    from normbench.config import Selection
    from normbench.suites.memory import MemoryConfig, run_memory

    sel = Selection(("rmsnorm",), ("triton",), ("fp32",), (64,), (1,), (64,), ("fwd+bwd",),
                    heads=(4,))  # fmt: skip
    run = run_memory(MemoryConfig(selection=sel, formats=()))
    saved = [r for r in run.cases() if r.ok]
    assert saved and all(abs(r.ratio("saved_bytes") - 1.0) < 1e-9 for r in saved), saved


def test_a_dtype_equal_to_x_is_the_plain_layer():
    opts = NormOptions(weight_dtype="fp32", residual_dtype="fp32")
    assert opts.for_case("add_rmsnorm", "fp32") == NormOptions()
    assert opts.for_case("add_rmsnorm", "bf16") == opts
    assert opts.for_case("dyt", "bf16") == NormOptions()  # options belong to the row norms


@needs_interpreter
def test_sweeps_keep_the_heads():
    from normbench.config import Selection, StabilityConfig
    from normbench.results.stability import SweepPointResult
    from normbench.suites.stability import run_stability

    sel = Selection(("rmsnorm",), ("triton",), ("fp32",), (64,), (1,), (4,), ("fwd+bwd",),
                    heads=(2,))  # fmt: skip
    run = run_stability(StabilityConfig(sel, ("normal",), sweep=(0,), formats=()))
    sweep = run.of(SweepPointResult)
    assert sweep and all("1x4x2x64" in r.case_id for r in sweep)
