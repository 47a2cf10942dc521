"""Bring your own kernel: the three ways in (--plugin file.py, --plugin module:object, the
`normbench.backends` entry point), every kind of plugin object, and every kind of broken plugin
(a load failure is one sentence and exit 2; a misbehaving kernel is a row naming the plugin)."""

import json
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from normbench import registry
from normbench.cli import app
from normbench.config import Selection, SpeedConfig
from normbench.config_args import SelectionArgs, build_selection
from normbench.plugins import PluginError, load_plugins, parse_spec
from normbench.suites.speed import run_speed

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "my_rmsnorm.py"
SMALL = ["--dim", "64", "--batch", "2", "--seq", "4", "--time-budget", "0.05", "--quick"]


@pytest.fixture(autouse=True)
def clean_registry():
    """Each test sees the built-in registry and leaves it as it found it."""
    saved = dict(registry.backends())
    yield
    registry._BACKENDS.clear()
    registry._BACKENDS.update(saved)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def rms_ref(x, w, eps):
    x64, w64 = x.double(), w.double()
    return x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + eps) * w64


def small_speed(backends, tmp_path, variants=("rmsnorm",), modes=("fwd",)):
    sel = Selection(
        variants=variants, backends=backends, dtypes=("fp32",), dims=(64,), batches=(2,),
        seqs=(4,), modes=modes,
    )  # fmt: skip
    cfg = SpeedConfig(selection=sel, threads=1, time_budget=0.05, quick=True, out=tmp_path)
    run = run_speed(cfg)
    return {(r.backend, r.mode): (r.status, r.note) for r in run.cases()}


# --- the example and the file way in ---------------------------------------------------------


def test_example_file_loads_with_its_origin_and_matches_the_reference():
    (b,) = load_plugins([str(EXAMPLE)])
    assert b.name == "my_rmsnorm" and registry.get_backend("my_rmsnorm") is b
    assert b.origin == f"plugin file {EXAMPLE}"
    assert b.variants == ("rmsnorm", "add_rmsnorm")
    g = torch.Generator().manual_seed(0)
    x, r = torch.randn(3, 5, 64, generator=g), torch.randn(3, 5, 64, generator=g)
    w = 1 + 0.1 * torch.randn(64, generator=g)
    y = b.functions["rmsnorm"](x, w, 1e-6)
    torch.testing.assert_close(y.double(), rms_ref(x, w, 1e-6), rtol=1e-5, atol=1e-6)
    # Fused add: normalizes the sum, returns the sum as the new residual stream.
    y2, res = b.functions["add_rmsnorm"](x, r, w, 1e-6)
    torch.testing.assert_close(res, x + r)
    torch.testing.assert_close(y2.double(), rms_ref(x + r, w, 1e-6), rtol=1e-5, atol=1e-6)
    # fp16 with an element of 300: x*x = 90000 overflows fp16, so squaring before the upcast
    # would zero the row (docs/numerics.md trap 1, pytorch #133085); the example upcasts first.
    xh = torch.ones(1, 1, 64, dtype=torch.float16)
    xh[..., 0] = 300
    yh = b.functions["rmsnorm"](xh, torch.ones(64, dtype=torch.float16), 1e-6)
    want = rms_ref(xh, torch.ones(64), 1e-6)
    torch.testing.assert_close(yh.double(), want, rtol=2e-3, atol=1e-3)


def test_example_through_the_cli_speed_gate_and_list(tmp_path):
    out = tmp_path / "reports"
    args = ["speed", "--plugin", str(EXAMPLE), "--backend", "eager,my_rmsnorm", "--variant",
            "rmsnorm,add_rmsnorm", *SMALL, "--out", str(out), "--format", "json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run = json.loads(next(out.glob("*.json")).read_text())
    times = {(r["backend"], r["variant"]): r for r in run["rows"] if r["metric"] == "time"}
    assert {k: r["status"] for k, r in times.items()} == {
        ("eager", "rmsnorm"): "ok", ("my_rmsnorm", "rmsnorm"): "ok",
        ("eager", "add_rmsnorm"): "ok", ("my_rmsnorm", "add_rmsnorm"): "ok",
    }  # fmt: skip
    assert run["config"]["extra"]["plugins"] == [str(EXAMPLE)]
    # Loading the same file again in the same process replaces it instead of clashing.
    result = runner.invoke(app, ["list", "--plugin", str(EXAMPLE)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "my_rmsnorm" in result.output and "plugin file" in result.output


def test_a_plugin_joins_the_default_backends():
    small = SelectionArgs(dim="64", batch="2", seq="4", device="cpu", plugin=[str(EXAMPLE)])
    sel = build_selection(small)
    assert sel.backends[-1] == "my_rmsnorm" and "eager" in sel.backends
    sel = build_selection(replace(small, backend="eager"))
    assert sel.backends == ("eager",)


def test_file_of_plain_functions_and_file_colon_object(tmp_path):
    f = write(tmp_path / "fastnorm.py", """
        import torch
        def rmsnorm(x, weight, eps):
            h = x.float()
            return (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps) * weight).to(x.dtype)
        def helper():  # not a variant: ignored
            pass
        OTHER = {"rmsnorm": rmsnorm}
    """)  # fmt: skip
    (b,) = load_plugins([str(f)])
    assert (b.name, b.variants, b.origin) == ("fastnorm", ("rmsnorm",), f"plugin file {f}")
    registry.unregister_backend("fastnorm")
    (b,) = load_plugins([f"{f}:OTHER"])
    assert b.name == "fastnorm" and b.variants == ("rmsnorm",)
    assert small_speed(("fastnorm",), tmp_path)[("fastnorm", "fwd")][0] == "ok"


def test_parse_spec():
    assert parse_spec("pkg.mod:obj") == ("pkg.mod", "obj", False)
    assert parse_spec("pkg.mod") == ("pkg.mod", None, False)
    assert parse_spec("dir/f.py") == ("dir/f.py", None, True)
    assert parse_spec("dir/f.py:OBJ") == ("dir/f.py", "OBJ", True)
    assert parse_spec("f.py") == ("f.py", None, True)


# --- the module:object way in, and every kind of object ---------------------------------------

MODULE = """
    from normbench.backends.base import Backend, backend_from_functions
    from normbench.variants.base import Semantics
    import torch.nn.functional as F

    def rmsnorm(x, weight, eps):
        return F.rms_norm(x, (x.shape[-1],), weight, eps)

    def layernorm(x, weight, bias, eps):
        return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)

    TABLE = {"rmsnorm": rmsnorm, "layernorm": layernorm}

    class Mine(Backend):
        name = "uk_class"
        variants = ("rmsnorm",)
        dtypes = ("float32",)  # normalized to fp32
        semantics = Semantics(cast="llama")  # one Semantics for every variant
        def build(self, variant, case):
            return rmsnorm

    INSTANCE = backend_from_functions("uk_instance", TABLE)

    def make():
        return backend_from_functions("uk_factory", {"rmsnorm": rmsnorm})

    def make_many():
        return [Mine(), {"layernorm": layernorm}]
"""


@pytest.mark.parametrize(
    "obj,names",
    [
        ("TABLE", ["userkern"]),
        ("Mine", ["uk_class"]),
        ("INSTANCE", ["uk_instance"]),
        ("make", ["uk_factory"]),
        ("rmsnorm", ["userkern"]),
        ("make_many", ["uk_class", "userkern"]),
    ],
)
def test_module_colon_object_every_kind(obj, names, tmp_path, monkeypatch):
    write(tmp_path / "userkern" / "__init__.py", MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_plugins([f"userkern:{obj}"])
    assert [b.name for b in loaded] == names
    assert all(b.origin == "plugin module userkern" for b in loaded)
    if obj == "Mine":
        b = loaded[0]
        assert b.dtypes == ("fp32",)
        assert b.semantics_for("rmsnorm").cast == "llama"


def test_module_plugin_runs_in_speed_via_the_cli(tmp_path, monkeypatch):
    write(tmp_path / "userkern" / "__init__.py", MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "r"
    args = ["speed", "--plugin", "userkern:TABLE", "--backend", "userkern", "--variant",
            "rmsnorm,layernorm", *SMALL, "--out", str(out), "--format", "json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(next(out.glob("*.json")).read_text())["rows"]
    assert {r["status"] for r in rows if r["metric"] == "time"} == {"ok"}


# --- the entry-point way in (a real dist-info on sys.path) ------------------------------------


def test_entry_points_are_listed_and_a_broken_one_does_not_break_list(tmp_path, monkeypatch):
    write(tmp_path / "epkern.py", """
        import torch.nn.functional as F
        KERNELS = {"rmsnorm": lambda x, weight, eps: F.rms_norm(x, (x.shape[-1],), weight, eps)}
    """)  # fmt: skip
    write(tmp_path / "epbroken.py", "import not_a_module_xyz\n")
    write(tmp_path / "epkern-1.0.dist-info" / "METADATA", "Metadata-Version: 2.1\nName: epkern\n"
          "Version: 1.0\n")  # fmt: skip
    write(tmp_path / "epkern-1.0.dist-info" / "entry_points.txt", """
        [normbench.backends]
        epfast = epkern:KERNELS
        epbad = epbroken:X
        eager = epkern:KERNELS
    """)  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._BACKENDS.clear()  # loaded again, now with the dist-info on sys.path
    table = registry.backends()
    fast = table["epfast"]
    assert fast.origin == "entry point epkern" and fast.available() is None
    assert table["eager"].origin == "builtin"  # a clash never replaces a built-in
    clash = table["epkern.eager"]
    assert "already taken" in clash.available()
    bad = table["epbad"]
    assert bad.available() == "failed to import: ModuleNotFoundError: No module named " \
        "'not_a_module_xyz'"  # fmt: skip
    result = runner.invoke(app, ["list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "epfast" in result.output and "epbad" in result.output
    s = small_speed(("epfast", "epbad", "eager"), tmp_path)
    assert s[("epfast", "fwd")][0] == "ok" and s[("eager", "fwd")][0] == "ok"
    assert s[("epbad", "fwd")] == ("skipped", bad.available())


# --- broken plugins: load failures are one sentence and exit 2 --------------------------------


@pytest.mark.parametrize(
    "name,text,obj,message",
    [
        ("missing.py", None, "", "missing.py does not exist"),
        ("syntax.py", "def rmsnorm(x, weight, eps)\n    return x\n", "", "syntax error in "
         "syntax.py line 1"),
        ("imports.py", "import not_a_module_xyz\n", "", "failed to import: ModuleNotFoundError: "
         "No module named 'not_a_module_xyz'"),
        ("raises.py", "raise RuntimeError('no GPU here')\n", "", "failed to import: RuntimeError: "
         "no GPU here"),
        ("empty.py", "X = 1\n", "", "defines no BACKENDS, BACKEND or variant functions"),
        ("noobj.py", "X = 1\n", ":NOPE", "has no 'NOPE' (it defines X)"),
        ("wrongtype.py", "X = 1\n", ":X", "got a int; expected a Backend instance"),
        ("badvariant.py", "X = {'rmsnrom': print}\n", ":X", "declares unknown variant 'rmsnrom'"),
        ("notfn.py", "X = {'rmsnorm': 3}\n", ":X", "rmsnorm is an int, not a function"),
        ("badname.py", "from normbench.backends.base import backend_from_functions as f\n"
         "X = f('a,b', {'rmsnorm': print})\n", ":X", "backend name 'a,b' must be"),
        ("factory.py", "def X():\n    raise ValueError('bad config')\n", ":X",
         "the factory X() raised ValueError: bad config"),
        ("twice.py", "from normbench.backends.base import backend_from_functions as f\n"
         "X = [f('p', {'rmsnorm': print}), f('p', {'layernorm': print})]\n", ":X",
         "defines backend 'p' twice"),
        ("taken.py", "from normbench.backends.base import backend_from_functions as f\n"
         "X = f('eager', {'rmsnorm': print})\n", ":X",
         "backend name 'eager' is already taken by builtin"),
    ],
)  # fmt: skip
def test_a_plugin_that_cannot_load_is_one_sentence_and_exit_2(name, text, obj, message, tmp_path):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    spec = f"{path}{obj}"
    with pytest.raises(PluginError, match=f"plugin '{path}"):
        load_plugins([spec])
    for cmd in (["list"], ["speed", *SMALL, "--out", str(tmp_path / "r")]):
        result = runner.invoke(app, [*cmd, "--plugin", spec])
        assert result.exit_code == 2, result.output
        assert message in result.output and f"plugin '{path}" in result.output
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_missing_module_says_how_to_fix_it():
    with pytest.raises(PluginError, match="no module named 'nosuchpkg_xyz' .install it"):
        load_plugins(["nosuchpkg_xyz.kernels:K"])


# --- broken plugins: a misbehaving kernel is a row naming the plugin, the run goes on ---------

BROKEN = """
    import torch
    import torch.nn.functional as F
    from normbench.backends.base import Backend, backend_from_functions as f
    from normbench.variants.base import Semantics

    def good(x, weight, eps):
        return F.rms_norm(x, (x.shape[-1],), weight, eps)

    def fwd_only(x, weight, eps):
        return good(x, weight, eps).detach()

    def overwrite(x, weight, eps):
        y = good(x, weight, eps)
        x.copy_(y)
        return x

    class Odd(BaseException):
        pass

    def raise_base(x, weight, eps):
        raise Odd("not an Exception")

    class RaisesInBuild(Backend):
        name = "b_build"
        def build(self, variant, case):
            raise RuntimeError("no kernel for this shape")

    BACKENDS = [
        f("b_raise", {"rmsnorm": lambda x, weight, eps: 1 / 0}),
        f("b_sig", {"rmsnorm": lambda x, w, eps: x}),
        f("b_shape", {"rmsnorm": lambda x, weight, eps: x[..., :-1]}),
        f("b_extra", {"rmsnorm": lambda x, weight, eps: (good(x, weight, eps), x)}),
        f("b_dtype", {"rmsnorm": lambda x, weight, eps: good(x, weight, eps).double()}),
        f("b_nan", {"rmsnorm": lambda x, weight, eps: good(x, weight, eps) * float("nan")}),
        f("b_none", {"rmsnorm": lambda x, weight, eps: None}),
        f("b_nograd", {"rmsnorm": fwd_only}),
        f("b_fwdonly", {"rmsnorm": fwd_only}, modes=("fwd",)),
        f("b_inplace", {"rmsnorm": overwrite}),
        f("b_inplace_ok", {"rmsnorm": overwrite}, semantics=Semantics(inplace=True)),
        f("b_base", {"rmsnorm": raise_base}),
        RaisesInBuild(),
    ]
"""


def test_misbehaving_kernels_are_rows_naming_the_plugin(tmp_path):
    f = write(tmp_path / "broken_kernels.py", BROKEN)
    names = [b.name for b in load_plugins([str(f)])]
    s = small_speed((*names, "eager"), tmp_path, modes=("fwd", "bwd"))
    origin = f"(plugin file {f})"
    expected = {
        "b_raise": ("error", "ZeroDivisionError: division by zero"),
        "b_sig": ("mismatch", "wrong signature: it takes (x, w, eps) but is called as "
                  "fn(x, weight, eps)"),
        "b_shape": ("mismatch", "y has shape (2, 4, 63), expected (2, 4, 64)"),
        "b_extra": ("mismatch", "returned 2 output(s), expected 1 (y)"),
        "b_dtype": ("mismatch", "y is float64, expected fp32"),
        "b_nan": ("mismatch", "y has 512 non-finite values where fp64 is finite"),
        "b_none": ("mismatch", "y is a NoneType, not a tensor"),
        "b_inplace": ("mismatch", "modified an input or dy in place"),
        "b_build": ("error", "RuntimeError: no kernel for this shape"),
        # A BaseException of its own ended the run in a traceback, exit 1, no report.
        "b_base": ("error", "Odd: not an Exception"),
    }  # fmt: skip
    for name, (status, problem) in expected.items():
        got_status, note = s[(name, "fwd")]
        assert got_status == status, (name, note)
        assert note.startswith(f"plugin {name} {origin}: "), note
        assert problem in note, (name, note)
    assert s[("b_nograd", "fwd")][0] == "ok"
    assert "has no gradient" in s[("b_nograd", "bwd")][1]
    # A wrong shape or an extra output in backward: a mismatch too, found before autograd ran
    # (it was autograd's error, an `error` row; the extra output was timed in fwd).
    for name in ("b_shape", "b_extra"):
        assert s[(name, "bwd")][0] == "mismatch" and expected[name][1] in s[(name, "bwd")][1]
    assert s[("b_fwdonly", "bwd")] == ("skipped", "b_fwdonly has no bwd (it implements fwd)")
    # Declared in place: given its own copies. It runs after b_inplace, so this also shows the
    # gate put back the inputs b_inplace overwrote.
    assert s[("b_inplace_ok", "fwd")][0] == "ok"
    # The built-in after the broken plugins still ran, on untouched inputs.
    assert s[("eager", "fwd")][0] == "ok" and s[("eager", "bwd")][0] == "ok"


def test_stability_runs_plugins_and_names_a_broken_one(tmp_path):
    f = write(tmp_path / "nan_kernel.py", """
        import torch.nn.functional as F
        def rmsnorm(x, weight, eps):
            return F.rms_norm(x, (x.shape[-1],), weight, eps) * float("nan")
    """)  # fmt: skip
    out = tmp_path / "r"
    args = ["stability", "--fp16", "--plugin", str(EXAMPLE), "--plugin", str(f), "--variant",
            "rmsnorm", "--dim", "64", "--dist", "normal,sum-overflow", "--no-determinism",
            "--out", str(out), "--format", "json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(next(out.glob("*.json")).read_text())["rows"]
    verdicts = {(r["backend"], r["dist"]): r for r in rows if r["metric"] == "verdict"}
    # Both plugins joined the default backends; the example passes the fp16 sum-overflow trap
    # (each square fits in fp16, the row sum does not; docs/numerics.md trap 2).
    assert verdicts[("my_rmsnorm", "sum-overflow")]["verdict"] == "PASS"
    assert verdicts[("eager", "normal")]["verdict"] == "PASS"
    bad = verdicts[("nan_kernel", "normal")]
    assert bad["verdict"] == "FAIL"
    assert bad["note"].startswith(f"plugin nan_kernel (plugin file {f}): ")


def test_compile_times_every_mode(tmp_path):
    # Every compile/bwd row was an error: `bwd` replays one backward graph (retain_graph=True),
    # which a backward compiled with donated buffers refuses.
    reason = registry.get_backend("compile").available()
    if reason:
        pytest.skip(reason)
    got = small_speed(("compile",), tmp_path, modes=("fwd", "bwd", "fwd+bwd"))
    assert {mode: status for (_, mode), (status, _) in got.items()} == {
        "fwd": "ok", "bwd": "ok", "fwd+bwd": "ok"}, got  # fmt: skip


DX_INTO_DY = """
import torch
from normbench.backends.base import backend_from_functions
from normbench.variants.base import Semantics


class _RMS(torch.autograd.Function):
    # Liger's in-place backward: dx is written into dy's buffer and returned.
    @staticmethod
    def forward(ctx, x, weight, eps):
        xf = x.float()
        rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, weight, rstd)
        return (xf * rstd * weight.float()).to(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        x, weight, rstd = ctx.saved_tensors
        xhat = x.float() * rstd
        g = dy.float() * weight.float()
        dx = rstd * (g - xhat * (g * xhat).mean(-1, keepdim=True))
        dw = (dy.float() * xhat).reshape(-1, x.shape[-1]).sum(0)
        dy.copy_(dx.to(dy.dtype))
        return dy, dw.to(weight.dtype), None


def rmsnorm(x, weight, eps):
    return _RMS.apply(x, weight, eps)


BACKENDS = [
    backend_from_functions("dx_in_dy", {"rmsnorm": rmsnorm}, semantics=Semantics(inplace=True)),
    backend_from_functions("dx_in_dy_undeclared", {"rmsnorm": rmsnorm}),
]
"""


def test_a_backward_declared_in_place_may_write_dx_into_dy(tmp_path):
    """Liger's in-place backward (dx into dy's buffer) declared Semantics(inplace=True) was a
    mismatch all the same: only the forward's arguments were copied. Undeclared it still is
    one, and the backend after it sees the dy everyone else does."""
    f = write(tmp_path / "dx_in_dy.py", DX_INTO_DY)
    names = [b.name for b in load_plugins([str(f)])]
    try:
        s = small_speed((*names, "eager"), tmp_path, modes=("bwd", "fwd+bwd"))
        for mode in ("bwd", "fwd+bwd"):
            assert s[("dx_in_dy", mode)][0] == "ok", s[("dx_in_dy", mode)]
            assert s[("dx_in_dy_undeclared", mode)][0] == "mismatch"
            assert "modified an input or dy in place" in s[("dx_in_dy_undeclared", mode)][1]
            assert s[("eager", mode)][0] == "ok"
        for suite, mode in (("stability", []), ("memory", ["--mode", "fwd+bwd"])):
            r = runner.invoke(app, [suite, "--backend", "dx_in_dy,eager", "--variant", "rmsnorm",
                                    "--dtype", "fp32", "--dim", "64", "--batch", "2", "--seq",
                                    "4", *mode, "--format", "json",
                                    "--out", str(tmp_path / suite)])  # fmt: skip
            assert r.exit_code == 0, r.output
            rows = json.loads(next((tmp_path / suite).glob("*.json")).read_text())["rows"]
            # ok, or skipped where an input does not apply (gemma-weight: a cast it lacks)
            assert {x["status"] for x in rows} <= {"ok", "skipped"}, {x["note"] for x in rows}
            assert any(x["status"] == "ok" and x["backend"] == "dx_in_dy" for x in rows)
    finally:
        for name in names:
            registry.unregister_backend(name)


def test_stability_judges_a_forward_only_kernel_forward(tmp_path):
    """An inference kernel (modes=("fwd",)) was never judged: every case "not run: ... has no
    fwd+bwd", the forward included. Its forward is judged now, its rows' mode fwd."""
    f = write(tmp_path / "fwd_only.py", """
        import torch
        from normbench.backends.base import backend_from_functions

        def good(x, weight, eps):
            return torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)

        def bad(x, weight, eps):
            return good(x, weight, eps) * 1.1

        BACKENDS = [backend_from_functions("infer_ok", {"rmsnorm": good}, modes=("fwd",)),
                    backend_from_functions("infer_bad", {"rmsnorm": bad}, modes=("fwd",))]
    """)  # fmt: skip
    names = [b.name for b in load_plugins([str(f)])]
    try:
        r = runner.invoke(app, ["stability", "--backend", ",".join(names), "--variant",
                                "rmsnorm", "--fp16", "--dim", "64", "--dist", "normal,large",
                                "--format", "json", "--out", str(tmp_path / "r")])  # fmt: skip
        assert r.exit_code == 0, r.output
        rows = json.loads(next((tmp_path / "r").glob("*.json")).read_text())["rows"]
        verdicts = {(x["backend"], x["dist"]): x["value_text"] for x in rows
                    if x["metric"] == "verdict"}  # fmt: skip
        assert verdicts == {
            ("infer_ok", "normal"): "PASS",
            ("infer_ok", "large"): "PASS",
            ("infer_bad", "normal"): "FAIL",
            ("infer_bad", "large"): "FAIL",
        }
        assert {x["mode"] for x in rows} == {"fwd"}
        assert not any(x["metric"].startswith("dx_") for x in rows)
        assert "bitwise identical over two runs, fwd." in r.output
    finally:
        for name in names:
            registry.unregister_backend(name)


def test_one_plugin_under_two_spellings_of_its_path_is_loaded_once(tmp_path, monkeypatch):
    # plugins/x.py and /abs/.../plugins/x.py: "backend name 'x' is already taken by plugin
    # file plugins/x.py", a clash of the plugin with itself.
    (tmp_path / "plugins").mkdir()
    f = write(tmp_path / "plugins" / "spelt.py", """
        import torch
        from normbench.backends.base import backend_from_functions
        BACKEND = backend_from_functions("spelt", {"rmsnorm": lambda x, weight, eps:
            torch.nn.functional.rms_norm(x, (x.shape[-1],), weight, eps)})
    """)  # fmt: skip
    monkeypatch.chdir(tmp_path)
    try:
        loaded = load_plugins(["plugins/spelt.py", str(f), "./plugins/../plugins/spelt.py"])
        assert [b.name for b in loaded] == ["spelt"]
        assert registry.get_backend("spelt").origin == "plugin file plugins/spelt.py"
    finally:
        registry.unregister_backend("spelt")
