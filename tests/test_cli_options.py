"""The shared options: declared once, laid out in --help order, and the library's selection
defaults are the CLI's."""

import inspect
from typing import Annotated

import pytest
import typer

from normbench.cli import app
from normbench.cli_options import After, Without, grouped
from normbench.config_args import (
    MEMORY_DEFAULTS,
    STABILITY_BACKENDS,
    OutputArgs,
    SelectionArgs,
    TimingArgs,
    build_selection,
    build_stability_selection,
)
from normbench.errors import UsageError
from normbench.registry import DEFAULT_BACKENDS
from normbench.suites import get_suite


def test_a_library_user_gets_the_cli_defaults():
    sel = build_selection(SelectionArgs(device="cpu"))
    assert (sel.variants, sel.dtypes, sel.dims, sel.batches, sel.seqs, sel.modes) == (
        ("layernorm", "rmsnorm"), ("fp32",), (1024, 4096), (4,), (512,), ("fwd",)
    )  # fmt: skip
    assert sel.backends == tuple(DEFAULT_BACKENDS)
    assert build_selection(SelectionArgs(device="cpu"), MEMORY_DEFAULTS).modes == ("fwd+bwd",)
    stab = build_stability_selection(SelectionArgs(device="cpu", dtype="bf16"), fp16=True)
    assert stab.dtypes == ("bf16", "fp16") and stab.dims == (1000, 4096, 8192)
    assert stab.backends == tuple(STABILITY_BACKENDS.split(",")) and stab.modes == ("fwd+bwd",)


def test_grouped_places_the_options_and_hands_over_dataclasses():
    seen = {}

    @grouped
    def cmd(
        first: Annotated[int, typer.Option("--first")],
        sel: Annotated[SelectionArgs, Without("mode", "no_weight")],
        timing: TimingArgs,
        output: OutputArgs,
        extra: Annotated[bool, typer.Option("--extra"), After("dtype")] = False,
        fmt: Annotated[str, typer.Option("--format")] = "md",
        last: Annotated[int, typer.Option("--last")] = 0,
    ) -> None:
        seen.update(sel=sel, timing=timing, output=output, extra=extra, last=last)

    names = list(inspect.signature(cmd).parameters)
    assert names[:5] == ["first", "variant", "backend", "dtype", "extra"]
    assert names[-1] == "last" and "mode" not in names and "no_weight" not in names
    assert names.index("hot") < names.index("pattern") < names.index("fmt") < names.index("seed")
    kwargs = {n: p.default for n, p in inspect.signature(cmd).parameters.items()}
    cmd(**{**kwargs, "first": 1, "dim": ["64"], "threads": 2})
    assert seen["sel"] == SelectionArgs(dim=["64"]) and seen["timing"] == TimingArgs(threads=2)
    assert seen["output"] == OutputArgs(fmt="md") and seen["last"] == 0


def test_stability_lists_its_own_options_among_the_shared_ones():
    command = typer.main.get_command(app).commands["stability"]
    names = [p.name for p in command.params]
    assert names[:11] == ["variant", "backend", "dtype", "fp16", "bf16", "fp32", "dist",
                          "inputs", "dim", "batch", "seq"]  # fmt: skip
    assert names[11:15] == ["sweep_range", "fail_on", "no_determinism", "device"]
    assert "mode" not in names and names[-1] == "heads"


def test_unknown_suite_is_one_sentence():
    assert get_suite("speed").name == "speed"
    with pytest.raises(UsageError, match="unknown suite 'nosuch': choose from speed"):
        get_suite("nosuch")


def test_a_replaced_shared_option_reaches_the_command_and_its_group():
    # A command's own --plot (other help, other default) replaces the shared one: the value the
    # user gave must not be lost on either side.
    seen = {}

    @grouped
    def cmd(*, output: OutputArgs, plot: Annotated[bool, typer.Option("--plot")] = True):
        seen.update(group=output.plot, own=plot)

    cmd(out="r", fmt="md", plot=False)
    assert seen == {"group": False, "own": False}
