"""`normbench diagnose` as a run: the probes (suites.diagnose) with the options as given, their
verdicts as typed results, and a summary line per figure."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from normbench.config import parse_ints, split, unique
from normbench.errors import UsageError
from normbench.signals import measuring

if TYPE_CHECKING:
    from normbench.results import Run
    from normbench.suites.common import Progress


@dataclass(frozen=True)
class DiagnoseConfig:
    """The options as given; the run records them so."""

    probes: tuple[str, ...] | None = None  # None: every probe
    quick: bool = False
    seed: int = 0
    device: str = "cpu"  # resolved (normbench.env.resolve_device)
    depths: str | None = None  # e.g. "6,12,24"
    norms: str | None = None  # e.g. "post-layernorm,pre-rmsnorm,none"
    plot_dir: Path | None = None  # the figures' folder (the reports'); None: no figures
    stem: str = ""  # the reports' name, which the figures share (<stem>.<probe>.png)

    def to_dict(self) -> dict:
        probes = list(self.probes) if self.probes is not None else None
        return {"probes": probes, "quick": self.quick, "seed": self.seed,
                "depths": self.depths, "norms": self.norms}  # fmt: skip


def build_diagnose_config(
    probes: list[str] | None = None,
    quick: bool = False,
    seed: int = 0,
    device: str = "auto",
    depths: str | None = None,
    norms: str | None = None,
    plot_dir: Path | None = None,
) -> DiagnoseConfig:
    from normbench.env import resolve_device

    dev = resolve_device(device)
    check_sizes(seed, depths, norms)  # before any model is built
    # The figures are written as the probes run: name them now, as the reports will be (the
    # folder made ready first: the name is claimed with a file there, released by `run`).
    stem = ""
    if plot_dir is not None:
        from normbench.outdir import prepare_out

        stem = _figure_stem(prepare_out(plot_dir))
    return DiagnoseConfig(tuple(probes) if probes is not None else None, quick, seed, dev,
                          depths, norms, plot_dir, stem)  # fmt: skip


def _figure_stem(plot_dir: Path) -> str:
    from normbench.results.writing import free_stem

    return free_stem(plot_dir, f"diagnose-{time.strftime('%Y%m%d-%H%M%S')}")


def check_sizes(seed: int, depths: str | None, norms: str | None) -> None:
    """Refuse a seed out of range, a depth over DEPTH_MAX (the model's memory grows with it)
    and a --depths or --norms that names nothing."""
    from normbench.validate import DEPTH_MAX, check_range, check_seed, given

    check_seed(seed)
    for depth in parse_ints(depths, "--depths"):
        check_range(depth, "--depths", 1, DEPTH_MAX, "each block's weights and state grow it")
    given(norms, "--norms")


def run(config: DiagnoseConfig, progress: Progress | None = None, debug: bool = False) -> Run:
    """Run the probes (an unknown probe, norm or depth: UsageError, exit 2, before any runs),
    one at a time: a stop signal (Ctrl-C, TERM, HUP) keeps the probes that finished and marks
    the run interrupted (exit 130, docs/design.md "Exit codes")."""
    from normbench.env import fingerprint
    from normbench.results import Run
    from normbench.suites.diagnose import SUITE, _validate, figure_findings

    start = time.perf_counter()
    plot_dir, stem = config.plot_dir, config.stem
    try:
        depths = parse_ints(config.depths, "--depths") or None
        norms = unique(split(config.norms)) or None  # a repeated norm is compared once
        try:
            selected, _, _ = _validate(split(config.probes) or None, depths, norms, config.device)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if plot_dir is not None:
            plot_dir.mkdir(parents=True, exist_ok=True)
            if not stem:  # a config built by hand: a free name all the same, never an earlier one
                stem = _figure_stem(plot_dir)
        results, interrupted = _probes(selected, config, depths, norms, plot_dir, stem, progress)
    finally:
        if plot_dir is not None and stem:
            from normbench.results.writing import release_stem

            release_stem(plot_dir, stem)  # the figures hold the name now, or none was drawn
    env = fingerprint(config.device)
    return Run(SUITE, env, config.to_dict(), list(results), figure_findings(results),
               interrupted=interrupted, wall_s=time.perf_counter() - start)  # fmt: skip


def _probes(selected, config, depths, norms, plot_dir, stem, progress) -> tuple[list, bool]:
    """Each selected probe in turn; a stop signal keeps those that finished."""
    from normbench.suites.diagnose import run_diagnose

    results, interrupted = [], False
    for i, probe in enumerate(selected):

        def report(label: str, fraction: float, i: int = i) -> None:
            if progress is not None:
                progress(int((i + fraction) / len(selected) * 1000), 1000, label[:80])

        try:
            with measuring():
                results += run_diagnose([probe.name], quick=config.quick, seed=config.seed,
                                        device=config.device, depths=depths, norms=norms,
                                        plot_dir=plot_dir, plot_stem=stem,
                                        progress=report)  # fmt: skip
        except KeyboardInterrupt:
            interrupted = True
            break
    return results, interrupted
