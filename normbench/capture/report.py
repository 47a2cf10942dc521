"""A capture's summary as typed results and findings: the `capture` run's (its reports beside
the file) and the leading rows of a `stability --inputs` run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from normbench.capture.summary import LayerSummary, summarize
from normbench.results import Finding, Level, Measurement, Run
from normbench.results.capture import CapturedLayerResult

if TYPE_CHECKING:
    from normbench.capture.records import Capture, CapturedLayer


def layer_result(layer: CapturedLayer, s: LayerSummary) -> CapturedLayerResult:
    m = layer.meta
    ms = [
        Measurement("max_abs", s.max_abs, ""),
        Measurement("top_share", s.top_share, "", note=f"the {len(s.top)} largest channels"),
        Measurement("mean_std", s.mean_std, ""),
        Measurement("nonfinite", float(s.nonfinite), "count"),
        Measurement("nearest_distance", s.distance, "", note=f"to {s.nearest}"),
    ]
    return CapturedLayerResult(
        case_id=f"capture/{m.name}", variant=m.variant, dtype=m.dtype, shape=m.case_shape(),
        measurements=tuple(ms), layer=m.name, module=m.module, eps=m.eps, cast=m.cast,
        residual=m.residual, top_channels=s.describe_top(), nearest=s.nearest, grad=m.grad,
    )  # fmt: skip


def summaries(capture: Capture) -> list[tuple[CapturedLayer, LayerSummary]]:
    return [(layer, summarize(layer)) for layer in capture.layers]


def findings(capture: Capture, rows: list[tuple[CapturedLayer, LayerSummary]]) -> list[Finding]:
    """What was captured, the largest |x| and where, what was left out, and a failure."""
    out = []
    layers = [layer.meta for layer, _ in rows]
    if layers:
        kinds: dict[str, int] = {}
        for m in layers:
            key = f"{m.norm} eps {m.eps:g} {m.residual}"
            kinds[key] = kinds.get(key, 0) + 1
        what = ", ".join(f"{n} {k}" for k, n in kinds.items())
        grads = " with the gradients at their outputs" if layers[0].grad else ""
        on = f" on {capture.batch}" if capture.batch else ""
        out.append(Finding(f"Captured {len(layers)} norm layers of {capture.model}{on}{grads}: "
                           f"{what}."))  # fmt: skip
        _, top = max(rows, key=lambda r: r[1].max_abs)
        chan = f" (channel {top.top[0][0]} holds {100 * top.top[0][1]:.0f}% of its energy)" if (
            top.top) else ""  # fmt: skip
        out.append(Finding(f"Largest |x|: {top.max_abs:.4g} at {top.layer}{chan}; nearest "
                           "synthetic inputs: " + ", ".join(_count(s.nearest for _, s in rows))
                           + "."))  # fmt: skip
    for why in capture.ignored:
        out.append(Finding(f"Not captured: {why}.", Level.NOTE))
    if not capture.complete:
        out.append(Finding(f"Incomplete: {capture.error}; the layers before it were kept.",
                           Level.WARNING))  # fmt: skip
    return out


def _count(names) -> list[str]:
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return [f"{n} x{k}" if k > 1 else n for n, k in counts.items()]


def capture_run(capture: Capture, path: str, device: str = "cpu", wall_s: float = 0.0) -> Run:
    """The `capture` command's run: one summary result per layer and the findings."""
    from normbench.env import fingerprint

    rows = summaries(capture)
    env = fingerprint(device)
    config = {"model": capture.model, "batch": capture.batch, "file": path, "loss": capture.loss}
    run = Run("capture", env, config, [layer_result(layer, s) for layer, s in rows])
    run.findings.extend(findings(capture, rows))
    run.findings.append(Finding(f"Capture file: {path}.", Level.NOTE))
    run.wall_s = wall_s
    return run
