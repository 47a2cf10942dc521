"""`normbench audit` and `normbench diagnose` from the command line: reports and exit codes."""

import json

import pandas as pd
from typer.testing import CliRunner

from normbench.cli import app
from normbench.results import load_run
from normbench.results.diagnose import ProbeResult, Verdict
from tests.kernel_reference import needs_compiler

runner = CliRunner()


@needs_compiler
def test_audit_writes_tidy_reports(tmp_path):
    result = runner.invoke(
        app,
        ["audit", "--arch", "sm_90", "--dtype", "bf16", "--dim", "4096", "--out", str(tmp_path),
         "--fail-on-spill"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    df = pd.read_csv(next(tmp_path.glob("*.csv")))
    regs = df[df.metric == "registers"]
    assert len(regs) >= 4 and (regs.value > 0).all()
    assert set(df[df.metric == "load_width_bytes"].value) == {16.0}
    assert "0 spill" in result.output


def test_audit_bad_arch_is_one_sentence(tmp_path):
    result = runner.invoke(app, ["audit", "--arch", "sm_1", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "sm_1" in result.output


def test_diagnose_one_probe_reports_its_verdict(tmp_path):
    result = runner.invoke(app, ["diagnose", "lipschitz", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    path = next(tmp_path.glob("*.json"))
    assert json.loads(path.read_text())["schema_version"] == 2
    (verdict,) = [r for r in json.loads(path.read_text())["rows"] if r["metric"] == "verdict"]
    assert verdict["case_id"] == "lipschitz"
    assert verdict["unit"] in ("confirmed", "refuted", "inconclusive")
    (probe,) = load_run(path).of(ProbeResult)
    assert probe.case_id == "lipschitz"
    assert probe.verdict in set(Verdict)
    # The claim of a global bound is refuted: the Jacobian gain grows like 1/sqrt(var + eps).
    gains = [v for v in probe.numbers.values() if isinstance(v, int | float) and v]
    assert gains and max(gains) > 10


def test_diagnose_unknown_probe(tmp_path):
    result = runner.invoke(app, ["diagnose", "nosuch", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "grad-init" in result.output and "Traceback" not in result.output


def test_diagnose_plot_names_its_figures_after_its_reports_and_never_overwrites(tmp_path):
    for _ in range(2):
        result = runner.invoke(app, ["diagnose", "attention-gain", "--quick", "--plot",
                                     "--out", str(tmp_path)])  # fmt: skip
        assert result.exit_code == 0, result.output
    runs = sorted(tmp_path.glob("*.json"))
    assert len(runs) == 2 and not [p for p in tmp_path.iterdir() if p.is_dir()]
    assert not list(tmp_path.glob(".*.claim"))  # each run gave its name's claim back
    for run in runs:  # <stem>.<probe>.png beside <stem>.json, as every suite's --plot
        figure = run.with_suffix(".attention-gain.png")
        assert figure.stat().st_size > 1000
        (probe,) = load_run(run).of(ProbeResult)
        assert str(probe.figure) == str(figure)


def test_diagnose_refused_after_naming_its_figures_gives_the_name_back(tmp_path, monkeypatch):
    # The name is claimed when the config is built; a refusal before the run begins (here the
    # reports' folder, checked just before measuring) left its hidden .claim file behind.
    import normbench.outdir
    from normbench.errors import UsageError

    def refuse(*args, **kwargs):
        raise UsageError("--out: refused")

    monkeypatch.setattr(normbench.outdir, "prepare_reports", refuse)
    result = runner.invoke(app, ["diagnose", "lipschitz", "--quick", "--plot",
                                 "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 2 and "--out: refused" in result.output
    assert not list(tmp_path.glob(".*.claim"))


def test_free_stem_skips_a_name_any_file_has(tmp_path):
    from normbench.results.writing import free_stem

    assert free_stem(tmp_path, "diagnose-1") == "diagnose-1"
    (tmp_path / "diagnose-1.grad-init.png").write_bytes(b"")
    (tmp_path / "diagnose-1-2.md").write_text("")
    assert free_stem(tmp_path, "diagnose-1") == "diagnose-1-3"
    assert free_stem(tmp_path, "d[1]") == "d[1]"  # a name is matched as it is, not as a pattern


def test_two_runs_started_in_one_second_claim_two_names(tmp_path):
    # Both globbed before either had drawn a figure, and both picked the same name.
    from normbench.results.writing import free_stem, release_stem

    first, second = free_stem(tmp_path, "diagnose-1"), free_stem(tmp_path, "diagnose-1")
    assert (first, second) == ("diagnose-1", "diagnose-1-2")
    release_stem(tmp_path, first)
    assert free_stem(tmp_path, "diagnose-1") == "diagnose-1"  # given back, and no file has it
