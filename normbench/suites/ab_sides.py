"""`normbench ab` from its options: the two sides parsed (`--a eager@../base --b eager`) into an
ABConfig, the interleaved run (suites.ab), and each side written as a speed run that
`normbench compare` can read again."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from normbench.config import DEFAULT_THRESHOLD
from normbench.config_args import (
    SelectionArgs,
    TimingArgs,
    build_selection,
    build_speed_config,
    load_plugin_backends,
)
from normbench.errors import UsageError

if TYPE_CHECKING:
    from normbench.suites.ab import ABConfig, ABResult
    from normbench.suites.common import Progress


def build_ab_config(
    a: str,
    b: str,
    args: SelectionArgs,
    timing: TimingArgs,
    out: Path,
    formats: tuple[str, ...],
    threshold: str = DEFAULT_THRESHOLD,
    processes: int | None = None,
) -> ABConfig:
    """--a and --b (a backend name or plugin:SPEC, then @PATH for another install) with the
    selection and timing options -> ABConfig. Named sides time that backend, from both installs
    where @PATH is given; @PATH alone on both sides times every --backend from each install."""
    from normbench.compare import CompareConfig, parse_threshold
    from normbench.plugins import absolute_plugin
    from normbench.suites.ab import ABConfig, resolve_side
    from normbench.worker import locate, split_spec

    load_plugin_backends(args.plugin)
    (spec_a, at_a), (spec_b, at_b) = split_spec(a), split_spec(b)
    installs = (at_a and locate(at_a, "--a"), at_b and locate(at_b, "--b"))
    backend = args.backend
    if bool(spec_a) != bool(spec_b) or (backend and (spec_a or spec_b)):
        raise UsageError(
            "either name a backend on both sides (--a eager@../base --b eager) or on neither "
            "(--a @../base --b @. times every --backend from both installs)"
        )
    if any(installs):  # the workers resolve the specs, each in its own install
        name_a, name_b = spec_a, spec_b
        # A side without @PATH runs this install: a bad name is refused here, in a moment,
        # not after every worker has imported torch.
        for spec, at, option, install in ((spec_a, at_a, "--a", installs[0]),
                                          (spec_b, at_b, "--b", installs[1])):  # fmt: skip
            if spec and not at:
                resolve_side(spec, option)
            # A checkout without normbench in it: the worker imports this install's, and the
            # side times the same code as the other (PASS, comparing nothing). A plugin's side
            # (plugin:SPEC, or a backend of --plugin's package) may come from a folder of its
            # own: the worker imports the plugin from there.
            cwd = install.cwd if install else None
            own = spec.startswith("plugin:") or bool(args.plugin)
            if cwd and not own and not (Path(cwd) / "normbench").is_dir():
                raise UsageError(
                    f"{option} {spec}@{at}: {cwd} holds no normbench package (no normbench/ "
                    "folder), so this install's would be timed on both sides; give a checkout "
                    "of normbench (e.g. `git worktree add ../base main`) or a virtual environment"
                )
        # The cases only: a named side's case ids carry its own backend.
        local = backend or (["eager"] if spec_a else None)
    elif not spec_a:
        raise UsageError("--a @PATH / --b @PATH need a path on at least one side")
    else:
        name_a, name_b = resolve_side(a, "--a"), resolve_side(b, "--b")
        local = [name_a]
    # The plugins are loaded above; their backends do not join the default --backend list.
    sel = build_selection(replace(args, backend=local, plugin=None))
    speed_config = build_speed_config(sel, timing, out, formats)
    cmp = CompareConfig(threshold=parse_threshold(threshold))
    plugins = tuple(absolute_plugin(p) for p in args.plugin or ())
    return ABConfig(speed_config, name_a, name_b, cmp, specs=(a, b), installs=installs,
                    plugins=plugins, processes=processes)  # fmt: skip


def run(config: ABConfig, progress: Progress | None = None, debug: bool = False) -> ABResult:
    """suites.ab.run_ab; when a stop signal (Ctrl-C, TERM, HUP) cut it short, the comparison is
    marked interrupted and its headline says so first: a PASS over the finished cases is not a
    PASS of the selection."""
    from normbench.results import Finding, Level
    from normbench.suites.ab import run_ab

    result = run_ab(config, progress, debug=debug)
    cmp = result.comparison
    if cmp.interrupted or result.a.interrupted or result.b.interrupted:
        cmp.interrupted = True
        if cmp.findings:  # the headline (compare_summary.headline) is the first finding
            head = cmp.findings[0]
            cmp.findings[0] = Finding(f"INTERRUPTED, over the finished cases only: {head.text}",
                                      head.level)  # fmt: skip
        cmp.add("Interrupted: the verdicts cover the finished cases.", Level.WARNING)
    return result


def exit_code(config: ABConfig, result: ABResult) -> int:
    """130 when interrupted (the finished cases are reported); else compare's: 1 when B is
    confirmed slower than A (or broken where A ran), 4 when no case could be compared (ab judges
    cases timed while the machine was busy, with a warning: both sides shared it)."""
    from normbench.compare import exit_code as compare_exit_code

    if result.comparison.interrupted:
        return 130
    return compare_exit_code(result.comparison)


def report_stem() -> str:
    """The name the reports of one ab run share: ab-<timestamp>."""
    return f"ab-{time.strftime('%Y%m%d-%H%M%S')}"
