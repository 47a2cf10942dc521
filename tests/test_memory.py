"""The memory suite against hand-computed values: bytes saved for backward, worked out from each
implementation's autograd graph, and CPU peaks of an allocation sequence written out by hand."""

import json
from dataclasses import dataclass

import pytest
import torch
from typer.testing import CliRunner

from normbench.backends.base import backend_from_functions
from normbench.backends.eager import FUNCTIONS as EAGER
from normbench.cli import app
from normbench.config import Selection
from normbench.config_args import SelectionArgs, build_selection, memory_defaults
from normbench.memprobe import PeakMemory, replay
from normbench.registry import get_backend, register_backend, unregister_backend
from normbench.results import Measurement, load_run
from normbench.results.memory import MemoryFields
from normbench.suites.memory import DIRECT_ROWS, MemoryConfig, run_memory

runner = CliRunner()
M, N = 8, 64  # batch 1 x seq 8 rows, hidden 64: every number below is small enough to check
MN = M * N


def memory_run(variants, backends, dtypes, modes=("fwd+bwd",), dims=(N,), rows=M):
    sel = Selection(
        variants=tuple(variants), backends=tuple(backends), dtypes=tuple(dtypes), dims=dims,
        batches=(1,), seqs=(rows,), modes=tuple(modes),
    )  # fmt: skip
    return run_memory(MemoryConfig(sel, formats=()))


@dataclass(frozen=True)
class Cell:
    """One measurement of a memory result, beside the result's typed fields and its ideal."""

    result: MemoryFields
    m: Measurement

    value = property(lambda self: self.m.value)
    status = property(lambda self: self.m.status)
    note = property(lambda self: self.m.note)
    case_id = property(lambda self: self.result.case_id)
    ideal = property(lambda self: self.result.ideal(self.m.metric))
    ratio = property(lambda self: self.result.ratio(self.m.metric))


def cells(run, *metrics):
    return [Cell(r, m) for r in run.cases() for m in r.measurements
            if not metrics or m.metric in metrics]  # fmt: skip


def by_metric(run):
    return {(c.result.variant, c.result.backend, c.result.dtype, c.result.mode, c.m.metric): c
            for c in cells(run)}  # fmt: skip


# Bytes saved for backward (activations and intermediates, each storage once) and parameters
# saved besides, for M x N inputs, read off the autograd graphs of torch 2.13 on CPU:
#   eager rmsnorm: F.rms_norm decomposes (no fused CPU kernel): h = x.float() (x itself in fp32,
#     a copy in bf16), ms = h.pow(2).mean, r = rsqrt(ms + eps) (saved, 4M), n = h * r (saves h
#     and r), n * weight (saves n, fp32 4MN, and weight) -> 4MN + 4M + 4MN in both dtypes.
#   composite rmsnorm (Llama): h = x.float(); h.pow(2) saves h; rsqrt saves r (4M); h * r saves
#     h, r; weight * n.to(dtype) saves the rounded n (b MN) and weight -> 4MN + 4M + b MN.
#   eager layernorm: native_layer_norm saves x, weight, bias, mean and rstd (M values each, in
#     fp32 for fp32 input; on CPU in bf16 for bf16 input) -> b MN + 2 M b_stats.
#   composite layernorm: d = h - mean (sub saves nothing); d.pow(2) saves d (4MN); rsqrt saves
#     r (4M); d * r saves d, r; .to(dtype) * weight saves the rounded product (b MN) and weight;
#     + bias saves nothing -> 4MN + 4M + b MN, and only the weight among the parameters.
SAVED = {
    ("rmsnorm", "eager", "fp32"): (4 * MN + 4 * M + 4 * MN, 4 * N),
    ("rmsnorm", "eager", "bf16"): (4 * MN + 4 * M + 4 * MN, 2 * N),
    ("rmsnorm", "composite", "fp32"): (4 * MN + 4 * M + 4 * MN, 4 * N),
    ("rmsnorm", "composite", "bf16"): (4 * MN + 4 * M + 2 * MN, 2 * N),
    ("layernorm", "eager", "fp32"): (4 * MN + 2 * 4 * M, 2 * 4 * N),
    ("layernorm", "eager", "bf16"): (2 * MN + 2 * 2 * M, 2 * 2 * N),
    ("layernorm", "composite", "fp32"): (4 * MN + 4 * M + 4 * MN, 4 * N),
    ("layernorm", "composite", "bf16"): (4 * MN + 4 * M + 2 * MN, 2 * N),
}


@pytest.fixture(scope="module")
def eager_composite():
    return by_metric(memory_run(("rmsnorm", "layernorm"), ("eager", "composite"), ("fp32", "bf16")))


@pytest.mark.parametrize("key", list(SAVED), ids=lambda k: "/".join(k))
def test_saved_bytes_match_the_autograd_graphs(eager_composite, key):
    variant, backend, dtype = key
    saved, params = SAVED[key]
    r = eager_composite[(variant, backend, dtype, "fwd+bwd", "saved_bytes")]
    assert r.status == "ok", r.note
    assert r.value == saved
    key = (variant, backend, dtype, "fwd+bwd")
    assert eager_composite[(*key, "saved_param_bytes")].value == params
    b = 4 if dtype == "fp32" else 2
    stats = 4 * M if variant == "rmsnorm" else 8 * M
    ideal = b * MN + stats  # Variant.ideal_saved: x plus fp32 statistics per row
    assert r.ideal == ideal
    assert r.ratio == pytest.approx(saved / ideal)
    # Whether x itself (not a copy) is among the saved tensors: eager fp32, composite RMS fp32.
    x_saved = backend == "eager" and (variant == "layernorm" or dtype == "fp32")
    x_saved |= (variant, backend, dtype) == ("rmsnorm", "composite", "fp32")
    assert r.result.saved_input_bytes == (b * MN if x_saved else 0)


def test_peak_rows_are_consistent_with_the_ideal(eager_composite):
    for (variant, backend, dtype, mode, metric), r in eager_composite.items():
        if metric not in ("peak_fwd_bytes", "peak_bytes"):
            continue
        assert r.status == "ok" and r.value > 0, (variant, backend, dtype, r.note)
        ideal = eager_composite[(variant, backend, dtype, mode, f"ideal_{metric}")].value
        assert r.ideal == ideal
        # A full training step holds at least its outputs, statistics and one gradient per input.
        if metric == "peak_bytes":
            fwd = eager_composite[(variant, backend, dtype, mode, "peak_fwd_bytes")]
            assert r.value >= fwd.value
            assert r.value >= fwd.result.after_fwd_bytes + (MN + N * (1 + (variant != "rmsnorm")))
        if backend == "composite":
            assert r.value >= ideal


def test_replay_and_the_cpu_tracker_on_a_hand_written_sequence():
    assert replay([4000, 8000, -4000, 1000]) == (12000, 9000)
    assert replay([-500, 100]) == (0, -400)  # freeing older memory never makes a peak
    with PeakMemory("cpu", "first") as mem:
        a = torch.empty(1000, dtype=torch.float32)  # 4000 B
        b = torch.empty(2000, dtype=torch.float32)  # 8000 B: peak 12000
        del a  # net 8000
        mem.mark("second")
        c = torch.empty(3000, dtype=torch.float32)  # 12000 B: peak 12000 above 8000
        del b, c  # net -8000
        d = torch.empty(250, dtype=torch.float32)  # 1000 B
    assert (mem.phases["first"].peak, mem.phases["first"].net) == (12000, 8000)
    assert (mem.phases["second"].peak, mem.phases["second"].net) == (12000, -7000)
    assert (mem.total.peak, mem.total.net) == (20000, 1000)
    del d


def test_composite_rmsnorm_fp32_peaks_by_hand():
    # composite rmsnorm, fp32, no autograd: h = x.float() is x itself; h.pow(2) (4MN) lives
    # until .mean (4M) returns; + eps, rsqrt (4M each) come and go; h * r (4MN) is live when
    # weight * h (4MN, the output) is allocated -> peak 8MN bytes. Tiny scalar tensors (a few
    # bytes each) may land on top, hence the 64-byte slack.
    rows = by_metric(memory_run(("rmsnorm",), ("composite",), ("fp32",), modes=("fwd",)))
    peak = rows[("rmsnorm", "composite", "fp32", "fwd", "peak_bytes")]
    assert 8 * MN <= peak.value <= 8 * MN + 64
    assert peak.ideal == 4 * MN  # the output
    # With autograd: the same, but r (4M) and n = h * r (4MN) are saved and stay, so the peak and
    # what is left after the forward are r, n and the output: 4M + 8MN.
    fwd = rows[("rmsnorm", "composite", "fp32", "fwd", "peak_fwd_bytes")]
    assert 4 * M + 8 * MN <= fwd.value <= 4 * M + 8 * MN + 64
    assert 4 * M + 8 * MN <= fwd.result.after_fwd_bytes <= 4 * M + 8 * MN + 64


def test_triton_saves_at_most_ideal_plus_one_fp32_per_row():
    reason = get_backend("triton").available()
    if reason:
        pytest.skip(f"the Triton kernels are unavailable: {reason}")
    variants = ("rmsnorm", "layernorm", "add_rmsnorm", "add_layernorm")
    run = memory_run(variants, ("triton",), ("fp32", "bf16"))
    saved = cells(run, "saved_bytes")
    assert len(saved) == 8
    for r in saved:
        # A wrong kernel is a mismatch row here: that fails, it is not skipped.
        assert r.status == "ok", f"{r.case_id}: {r.status} {r.note}"
        assert r.value <= r.ideal + 4 * M, r.case_id
    # The interpreter's allocations say nothing about a GPU kernel: no peak from it.
    peaks = cells(run, "peak_fwd_bytes", "peak_bytes")
    assert peaks and all(r.status == "skipped" and "interpreter" in r.note for r in peaks)
    # Beyond DIRECT_ROWS rows the interpreter is gated and measured at SMALL_ROWS and scaled.
    rows = 2 * DIRECT_ROWS
    run = memory_run(("rmsnorm", "layernorm"), ("triton",), ("bf16",), rows=rows)
    for r in cells(run, "saved_bytes"):
        assert r.status == "ok" and "scaled" in r.note, r.note
        assert r.value <= r.ideal + 4 * rows, r.case_id


@pytest.fixture
def fake_backends():
    def wrong(x, weight, eps):
        return EAGER["rmsnorm"](x, weight, eps) * 1.1

    def boom(x, weight, eps):
        raise RuntimeError("kernel exploded")

    names = {"m_wrong": wrong, "m_boom": boom}
    for name, fn in names.items():
        register_backend(backend_from_functions(name, {"rmsnorm": fn}), origin="test")
    register_backend(
        backend_from_functions("m_fwdonly", {"rmsnorm": EAGER["rmsnorm"]}, modes=("fwd",)),
        origin="test",
    )
    yield
    for name in (*names, "m_fwdonly"):
        unregister_backend(name)


def test_mismatch_error_and_forward_only_rows(fake_backends):
    run = memory_run(("rmsnorm",), ("m_wrong", "m_boom", "eager"), ("fp32",))
    heads = {r.backend: r for r in run.cases()}
    assert heads["m_wrong"].status == "mismatch" and "tolerance" in heads["m_wrong"].note
    assert [m.metric for m in heads["m_wrong"].measurements] == ["saved_bytes"]
    boom = heads["m_boom"]
    assert (boom.status, boom.note) == ("error", "RuntimeError: kernel exploded")
    assert heads["eager"].status == "ok"
    assert any("1 mismatch" in line for line in run.summary)
    run = memory_run(("rmsnorm",), ("m_fwdonly",), ("fp32",), modes=("fwd",))
    rows = by_metric(run)
    assert rows[("rmsnorm", "m_fwdonly", "fp32", "fwd", "saved_bytes")].status == "skipped"
    assert rows[("rmsnorm", "m_fwdonly", "fp32", "fwd", "peak_bytes")].status == "ok"


ARGS = ["-v", "rmsnorm", "-b", "eager,composite", "--batch", "1", "--seq", str(M)]


def test_cli_memory_prints_the_table_and_writes_the_reports(tmp_path):
    result = runner.invoke(app, ["memory", *ARGS, "--dim", str(N), "--dtype", "bf16",
                                 "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "x ideal" in result.output
    assert "rmsnorm: saved for backward / ideal: eager 3.91x, composite 2.94x" in result.output
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".csv", ".json", ".md"]
    run = load_run(next(tmp_path.glob("*.json")))
    saved = {r.backend: r.value("saved_bytes") for r in run.cases()}
    assert saved == {"eager": 8 * MN + 4 * M, "composite": 6 * MN + 4 * M}
    assert {r.mode for r in run.cases()} == {"fwd+bwd"}  # memory's default mode: a training step
    md = " ".join(next(tmp_path.glob("*.md")).read_text().split())  # cells are padded
    assert "| rmsnorm | bf16 | 1x8x64 | fwd+bwd | composite | ok | 3.03 KiB | 2.94x | 128 B |" in md


def test_speed_memory_adds_the_rows_and_the_saved_column(tmp_path):
    result = runner.invoke(app, ["speed", "--memory", *ARGS, "--dim", str(N), "--quick",
                                 "--time-budget", "0.05", "--out", str(tmp_path),
                                 "--format", "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "saved (x ideal)" in result.output
    run = json.loads(next(tmp_path.glob("*.json")).read_text())
    saved = {r["backend"]: r["value"] for r in run["rows"] if r["metric"] == "saved_bytes"}
    assert saved == {"eager": 8 * MN + 4 * M, "composite": 8 * MN + 4 * M}  # fp32 on CPU
    assert {r["suite"] for r in run["rows"]} == {"speed"}


@pytest.mark.parametrize("command", ["memory", "speed"])
def test_too_big_shapes_are_skipped_and_the_rest_runs(command, tmp_path, monkeypatch):
    import normbench.env

    # 1 MiB "available": N = 64 fits (8 x 64 x 128 B), N = 4096 does not (8 x 4096 x 128 B).
    monkeypatch.setattr(normbench.env, "available_memory", lambda device: 1 << 20)
    extra = ["--quick", "--time-budget", "0.05"] if command == "speed" else []
    result = runner.invoke(app, [command, *ARGS, "--dim", f"{N},4096", "--out", str(tmp_path),
                                 "--format", "json", *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    run = load_run(next(tmp_path.glob("*.json")))
    head = "saved_bytes" if command == "memory" else "time"
    assert all(r.measurements[0].metric == head for r in run.cases())
    status = {(r.backend, str(r.shape)): (r.status, r.note) for r in run.cases()}
    for b in ("eager", "composite"):
        assert status[(b, f"1x{M}x{N}")][0] == "ok"
        s, note = status[(b, f"1x{M}x4096")]
        assert s == "skipped"
        assert note == "too big for cpu: shape 1x8x4096 needs about 4 MiB, 1 MiB available"


def test_no_shape_fits_is_one_sentence_and_exit_2(tmp_path, monkeypatch):
    import normbench.env

    monkeypatch.setattr(normbench.env, "available_memory", lambda device: 1000)
    result = runner.invoke(app, ["memory", *ARGS, "--dim", f"{N},128", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "the smallest selected shape 1x8x64 (batch x seq x dim) needs about 64 KiB" in (
        result.output
    )
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args,message",
    [
        (["--mode", "sideways"], "unknown mode 'sideways'"),
        (["--dtype", "fp8"], "unknown dtype 'fp8'"),
        (["--backend", "nosuch"], "unknown backend 'nosuch'"),
    ],
)
def test_memory_bad_input_is_one_sentence_and_exit_2(args, message, tmp_path):
    result = runner.invoke(app, ["memory", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_extrapolated_saved_bytes_equal_the_direct_measure():
    # What an interpreted backend gets beyond DIRECT_ROWS rows, checked on eager and composite,
    # which can run the whole case: a row-wise norm's saved state is linear in the rows.
    from normbench.cases import Case
    from normbench.suites.memory import extrapolated_saved
    from normbench.variants import Shape, get_variant

    rows = 3 * DIRECT_ROWS
    variants, backends = ("rmsnorm", "add_layernorm"), ("eager", "composite")
    direct = by_metric(memory_run(variants, backends, ("bf16",), rows=rows))
    for backend in backends:
        for variant in variants:
            case = Case(variant, backend, "bf16", Shape(1, rows, N), "fwd+bwd")
            b, v = get_backend(backend), get_variant(variant)
            saved, problem = extrapolated_saved(case, v, b.build(v, case),
                                                b.semantics_for(variant), seed=0)  # fmt: skip
            assert problem == ""
            want = direct[(variant, backend, "bf16", "fwd+bwd", "saved_bytes")]
            assert saved.nbytes == want.value, (backend, variant)
            assert saved.param_bytes == want.result.value("saved_param_bytes")
            assert saved.input_bytes == want.result.saved_input_bytes


def test_memory_quick_is_the_smaller_sweep(tmp_path):
    # memory has no time budget: its --quick is the smaller selection (one N, fewer rows,
    # normbench.config_args.MEMORY_QUICK), and what is given explicitly still wins.
    def cases(*args: str) -> dict:
        out = tmp_path / str(len(list(tmp_path.iterdir())))
        result = runner.invoke(app, ["memory", "-v", "rmsnorm", "-b", "eager", "--device", "cpu",
                                     *args, "--out", str(out), "--format", "json"])  # fmt: skip
        assert result.exit_code == 0, result.output
        run = load_run(next(out.glob("*.json")))
        return {str(r.shape): r for r in run.cases()}, run.config

    full, config = cases()
    assert sorted(full) == ["4x512x1024", "4x512x4096"] and config["quick"] is False
    quick, config = cases("--quick")
    assert sorted(quick) == ["1x512x1024"] and config["quick"] is True
    rows, n = 512, 1024  # eager RMSNorm in fp32 saves x and its output, and fp32 rstd per row
    assert quick["1x512x1024"].value("saved_bytes") == 8 * rows * n + 4 * rows
    ratio = {shape: r.ratio("saved_bytes") for shape, r in {**full, **quick}.items()}
    assert ratio["1x512x1024"] == ratio["4x512x1024"]  # the same at fewer rows, and to the
    assert len({f"{x:.2f}" for x in ratio.values()}) == 1  # summary's 2 digits at another N
    given = build_selection(SelectionArgs(device="cpu", dim=[str(N)]), memory_defaults(True))
    assert (given.dims, given.batches, given.seqs) == ((N,), (1,), (512,))
