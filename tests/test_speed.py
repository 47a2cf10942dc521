"""The speed suite's contract: wrong numbers are never timed, a failing case is an error row and
the sweep goes on, Ctrl-C keeps what finished."""

import pytest

from normbench.backends.base import backend_from_functions
from normbench.backends.eager import FUNCTIONS as EAGER
from normbench.config import Selection, SpeedConfig
from normbench.registry import register_backend, unregister_backend
from normbench.suites.speed import rms_vs_ln, run_speed


@pytest.fixture
def fake_backends():
    calls = {"wrong": 0}

    def wrong(x, weight, eps):
        calls["wrong"] += 1
        return EAGER["rmsnorm"](x, weight, eps) * 1.1

    def boom(x, weight, eps):
        raise RuntimeError("kernel exploded")

    def interrupt(x, weight, eps):
        raise KeyboardInterrupt

    names = {"t_wrong": wrong, "t_boom": boom, "t_interrupt": interrupt}
    for name, fn in names.items():
        register_backend(backend_from_functions(name, {"rmsnorm": fn}), origin="test")
    yield calls
    for name in names:
        unregister_backend(name)


def config(backends, tmp_path, variants=("rmsnorm",)):
    sel = Selection(
        variants=variants, backends=backends, dtypes=("fp32",), dims=(64,), batches=(2,),
        seqs=(4,), modes=("fwd",),
    )  # fmt: skip
    return SpeedConfig(selection=sel, threads=1, time_budget=0.05, quick=True, out=tmp_path)


def statuses(run):
    return {r.backend: (r.status, r.note) for r in run.cases()}


def test_mismatch_is_never_timed_and_errors_do_not_stop_the_sweep(fake_backends, tmp_path):
    run = run_speed(config(("t_wrong", "t_boom", "eager"), tmp_path))
    s = statuses(run)
    assert s["t_wrong"][0] == "mismatch" and "tolerance" in s["t_wrong"][1]
    assert fake_backends["wrong"] == 1  # the gate's single call: never timed
    assert s["t_boom"] == ("error", "RuntimeError: kernel exploded")
    assert s["eager"][0] == "ok"
    assert not run.interrupted
    assert any("1 mismatch" in line for line in run.summary)


def test_ctrl_c_keeps_what_finished(fake_backends, tmp_path):
    run = run_speed(config(("eager", "t_interrupt", "composite"), tmp_path))
    assert run.interrupted
    assert statuses(run) == {"eager": ("ok", statuses(run)["eager"][1])}


def test_speedup_and_the_one_line_answer(tmp_path):
    run = run_speed(config(("eager", "composite"), tmp_path, ("rmsnorm", "layernorm")))
    t = {(r.backend, r.variant): r.time.value for r in run.cases()}
    sp = {(r.backend, r.variant): r.value("speedup") for r in run.cases()}
    assert sp[("eager", "rmsnorm")] == pytest.approx(1.0)
    ratio = t[("eager", "rmsnorm")] / t[("composite", "rmsnorm")]
    assert sp[("composite", "rmsnorm")] == pytest.approx(ratio)
    answer = rms_vs_ln(run.cases())
    assert answer.startswith("Is RMSNorm faster than LayerNorm here?")
    assert "eager" in answer and "composite" in answer
