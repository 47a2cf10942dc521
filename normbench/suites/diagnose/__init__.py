"""diagnose: the folk claims about normalization layers, each turned into a measurement.

Every probe runs small synthetic models or single layers (no downloads) and returns a ProbeResult
(normbench.results.diagnose): the claim, its source, a Verdict (confirmed / refuted /
inconclusive) and the numbers, threshold and caveat behind it. The verdict comes from a pure
function of the numbers in each probe module (`verdict_<probe>`), so it can be re-checked from a
saved result.

Importing this package is cheap: a probe's module (and torch) is imported when it runs.
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from normbench.results import Finding, Status
from normbench.suites.diagnose.common import Outcome, ProbeContext, ProbeResult, Verdict

__all__ = [
    "PROBES",
    "SUITE",
    "Probe",
    "ProbeContext",
    "ProbeResult",
    "Verdict",
    "figure_findings",
    "known_norms",
    "run_diagnose",
]

SUITE = "diagnose"


@dataclass(frozen=True)
class Probe:
    """A claim and how to test it. `module` holds `run(ctx) -> Outcome` and `verdict_*`."""

    name: str
    claim: str
    source: str
    module: str
    # Toy-model probes pin one CPU thread: their ops are too small to gain from more, and
    # OpenMP's spin-waits collapse when another process shares the cores. Timing probes keep
    # the user's thread count.
    single_thread: bool = True

    def run(self, ctx: ProbeContext) -> Outcome:
        mod = importlib.import_module(f"normbench.suites.diagnose.{self.module}")
        return mod.run(ctx)


_PROBES = (
    Probe(
        "grad-init",
        "Post-LN gradients near the output do not shrink with depth; Pre-LN's scale as 1/sqrt(L)",
        "Xiong et al. 2020, On Layer Normalization in the Transformer Architecture (ICML)",
        "grad_init",
    ),
    Probe(
        "amplify",
        "A Post-LN model's output moves O(L) per update, a Pre-LN model's O(log L)",
        "Liu et al. 2020, Understanding the Difficulty of Training Transformers (EMNLP)",
        "amplify",
    ),
    Probe(
        "lr-sweep",
        "Norms allow larger learning rates; Post-LN needs warm-up",
        "Wortsman et al. 2023, Small-scale proxies for large-scale Transformer training "
        "instabilities; Xiong et al. 2020",
        "lr_sweep",
    ),
    Probe(
        "landscape",
        "Norms smooth the loss landscape",
        "Santurkar et al. 2018, How Does Batch Normalization Help Optimization? (NeurIPS)",
        "landscape",
    ),
    Probe(
        "lipschitz",
        "A norm layer bounds the Lipschitz constant",
        "practitioner lore; LayerNorm's gradient: Xu et al. 2019, Understanding and Improving "
        "Layer Normalization (NeurIPS)",
        "lipschitz",
    ),
    Probe(
        "batchnorm",
        "BatchNorm fails in Transformers: diluted by padding, noisy in small batches, "
        "batch-dependent; LayerNorm is not",
        "Shen et al. 2020, PowerNorm: Rethinking Batch Normalization in Transformers (ICML); "
        "Ba et al. 2016, Layer Normalization",
        "batchnorm",
    ),
    Probe(
        "attention-gain",
        "LayerNorm is gain control: it removes token magnitude, so large tokens cannot dominate "
        "attention",
        "practitioner lore; Ba et al. 2016, Layer Normalization; Sun et al. 2024, Massive "
        "Activations in Large Language Models",
        "attention_gain",
    ),
    Probe(
        "precision",
        "Post-Norm with fp16 gives NaN; Pre-Norm or RMSNorm fixes it",
        "practitioner lore; Micikevicius et al. 2018, Mixed Precision Training (ICLR)",
        "precision",
    ),
    Probe(
        "rmsnorm-speed",
        "RMSNorm is about 10% faster than LayerNorm",
        "Zhang & Sennrich 2019, Root Mean Square Layer Normalization (NeurIPS)",
        "rmsnorm_speed",
        single_thread=False,
    ),
    Probe(
        "overflow",
        "`(x * x).float()` protects an fp16 RMSNorm from overflow",
        "pytorch/pytorch issue #133085",
        "overflow",
    ),
)
PROBES: dict[str, Probe] = {p.name: p for p in _PROBES}


def known_norms() -> list[str]:
    """Every accepted `norms` entry: <placement>-<type> for post/pre/deepnorm, or 'none'."""
    from normbench.suites.diagnose.norms import known_variants

    return known_variants()


def _usage_error(message: str) -> ValueError:
    from normbench.errors import UsageError  # a ValueError that the CLI maps to exit code 2

    return UsageError(message)


def _validate(
    probes: Sequence[str] | None,
    depths: Sequence[int] | None,
    norms: Sequence[str] | None,
    device: str,
) -> tuple[list[Probe], tuple[int, ...] | None, tuple[str, ...] | None]:
    names = list(PROBES) if probes is None else list(dict.fromkeys(probes))
    unknown = [n for n in names if n not in PROBES]
    if unknown:
        raise _usage_error(f"unknown probe {unknown[0]!r}: choose from {', '.join(PROBES)}")
    if not names:
        raise _usage_error(f"no probe selected: choose from {', '.join(PROBES)}")
    if depths is not None and (not depths or any(int(d) != d or d < 1 for d in depths)):
        raise _usage_error(f"depths must be positive integers, got {list(depths)}")
    from normbench.validate import DEPTH_MAX

    if depths and max(depths) > DEPTH_MAX:  # memory grows with depth: refuse before building
        raise _usage_error(f"depths must be at most {DEPTH_MAX}, got {max(depths)}")
    if norms is not None:
        from normbench.suites.diagnose.norms import parse_variant

        try:
            norms = tuple(parse_variant(n).name for n in norms)
        except ValueError as err:
            raise _usage_error(str(err)) from None
        if not norms:
            raise _usage_error(f"norms is empty: choose from {', '.join(known_norms())}")
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise _usage_error(f"unknown device {device!r}: use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise _usage_error(f"device {device!r} requested but CUDA is not available here")
    return (
        [PROBES[n] for n in names],
        tuple(int(d) for d in depths) if depths is not None else None,
        norms,
    )


@contextmanager
def _threads(single: bool, device: str) -> Iterator[None]:
    from normbench.suites.common import torch_threads

    if not single or not device.startswith("cpu"):
        yield
        return
    with torch_threads(1):
        yield


def _failed(probe: Probe, err: Exception) -> Outcome:
    """An exception is data: the sweep goes on and the result says what broke."""
    return Outcome(
        verdict=Verdict.INCONCLUSIVE,
        numbers={"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()},
        threshold="not applied: the probe raised an error",
        caveat="the probe did not finish; see numbers['traceback']",
        summary=f"probe failed: {type(err).__name__}: {err}",
    )


def run_diagnose(
    probes: list[str] | None = None,
    *,
    quick: bool = False,
    seed: int = 0,
    device: str = "cpu",
    depths: list[int] | None = None,
    norms: list[str] | None = None,
    plot_dir: Path | None = None,
    plot_stem: str = "",
    progress: Callable[[str, float], None] | None = None,
) -> list[ProbeResult]:
    """Run the selected probes (all by default) and return one ProbeResult per probe, in order.

    `depths` replaces the depth sweep of grad-init and amplify; the training probes (lr-sweep,
    landscape, precision) train at its first entry. `norms` replaces the variants the model
    probes compare ("post-layernorm", "pre-rmsnorm", "none", ...); a probe whose claim needs a
    variant the list lacks says so and returns inconclusive. `progress(label, fraction)` gets
    the overall completion in [0, 1], several times per probe. Unknown names raise ValueError
    (normbench.errors.UsageError) listing the known ones. A probe that raises becomes an
    inconclusive result with status ERROR carrying the error; the others still run.
    """
    selected, depth_t, norm_t = _validate(probes, depths, norms, device)
    results: list[ProbeResult] = []
    n = len(selected)
    for i, probe in enumerate(selected):

        def report(label: str, fraction: float, i: int = i) -> None:
            if progress is not None:
                progress(label, (i + min(1.0, max(0.0, fraction))) / n)

        ctx = ProbeContext(
            quick=quick,
            seed=seed,
            device=device,
            depths=depth_t,
            norms=norm_t,
            plot_dir=Path(plot_dir) if plot_dir is not None else None,
            plot_stem=plot_stem,
            progress=report,
        )
        report(f"{probe.name}: starting", 0.0)
        start = time.perf_counter()
        status = Status.OK
        try:
            with _threads(probe.single_thread, device):
                outcome = probe.run(ctx)
        except Exception as err:  # an error is a result; the other probes still run
            outcome, status = _failed(probe, err), Status.ERROR
        seconds = time.perf_counter() - start
        results.append(
            ProbeResult(
                probe.name,
                claim=probe.claim,
                source=probe.source,
                verdict=outcome.verdict,
                numbers=outcome.numbers,
                threshold=outcome.threshold,
                caveat=outcome.caveat,
                summary=outcome.summary,
                figure=outcome.figure,
                seconds=seconds,
                status=status,
            )
        )
        report(f"{probe.name}: {outcome.verdict}", 1.0)
    return results


def figure_findings(results: Sequence[ProbeResult]) -> list[Finding]:
    """The run's summary lines: where each probe's figure was written."""
    return [Finding(f"{r.probe}: figure {r.figure}") for r in results if r.figure is not None]
