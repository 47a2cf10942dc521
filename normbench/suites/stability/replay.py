"""`stability --inputs FILE`: every selected implementation judged on a capture's tensors
(docs/capture.md "Replay"), through the same judge as the synthetic cases (`evaluate`: the
fp64 oracle of the implementation's declared semantics, the tolerance rule, propagation and
determinism), in the captured dtype and cast to fp16 and bf16.

A case is one dtype x layer x variant x backend; its input (`dist`) is the layer's name, so
the verdict matrix has a row per layer. Forward and backward where the capture holds dy (the
gradient at the layer's output, docs/capture.md "Gradients"), forward only otherwise. A layer
whose values the cast overflows is skipped with the reason (the model cannot run in that dtype
either); an implementation whose weight convention is not the layer's (1 + w against w) is
skipped as the synthetic `gemma-weight` input is. The run leads with each layer's summary."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from normbench.backends.base import reason_from
from normbench.results import Finding, Run
from normbench.results.stability import StabilityResult
from normbench.suites.common import CaseLoop, PreparedCache, Progress
from normbench.suites.stability.judge import SUITE, arm_interpreter, evaluate, judged_mode
from normbench.suites.stability.result import judged, skipped

if TYPE_CHECKING:
    from normbench.backends.base import Backend
    from normbench.capture.records import Capture, CapturedLayer
    from normbench.capture.summary import LayerSummary
    from normbench.cases import Case
    from normbench.config import StabilityConfig


def convention_mismatch(backend: Backend, case: Case, layer: CapturedLayer) -> str | None:
    """Why the backend's weight convention is not the layer's (an RMSNorm replay only), or None."""
    if case.variant != "rmsnorm":
        return None
    cast = backend.semantics_for(case.variant).cast
    if layer.meta.gemma and cast != "gemma":
        return f"this layer applies (1 + w) (Gemma-style); {backend.name} declares cast {cast}"
    if not layer.meta.gemma and cast == "gemma":
        return f"this layer applies w; {backend.name} declares cast gemma (1 + w)"
    return None


class ReplayCase:
    """One replay case: applicable? its tensors, the verdict."""

    def __init__(self, capture: Capture, summaries: dict[str, LayerSummary],
                 determinism: bool) -> None:  # fmt: skip
        from normbench.capture.cases import prepare_layer

        self.layers = {layer.meta.name: layer for layer in capture.layers}
        self.summaries = summaries
        # Determinism is a property of the algorithm: checked on the first layer only.
        self.det_layer = capture.layers[0].meta.name if determinism else None
        # A layer's tensors and oracle, made once for all its backends (its name is `dist`).
        self.cache = PreparedCache(build=lambda case: prepare_layer(self.layers[case.dist], case))

    def __call__(self, case: Case) -> StabilityResult:
        from normbench.capture.summary import hints
        from normbench.registry import get_backend
        from normbench.variants import get_variant

        backend = get_backend(case.backend)
        case = judged_mode(backend, case)  # a forward-only kernel: its forward judged
        layer = self.layers[case.dist]
        reason = reason_from(backend, "supports", case) or convention_mismatch(backend, case, layer)
        if reason:
            return skipped(case, reason)
        p = self.cache.get(case)
        if isinstance(p, str):
            return skipped(case, p)
        trap = hints(self.summaries[layer.meta.name], case.dtype, layer.meta.eps)
        variant, det = get_variant(case.variant), case.dist == self.det_layer
        return judged(case, lambda: evaluate(backend, variant, p, trap=trap, determinism=det))


def layer_findings(results: list[StabilityResult]) -> list[Finding]:
    """Per layer: the implementations that fail (or are marginal) on it, or that none does."""
    bad: dict[str, list[str]] = {}
    judged = 0
    for r in results:
        if r.verdict is None or not r.verdict.judged:
            continue
        judged += 1
        if r.verdict.value != "PASS":
            bad.setdefault(r.dist or "?", []).append(f"{r.variant}/{r.backend} {r.dtype} "
                                                     f"{r.verdict.value}")  # fmt: skip
    if not judged:
        return []
    if not bad:
        return [Finding("Every judged implementation PASSes on every captured layer.")]
    parts = [f"{layer}: {', '.join(v)}" for layer, v in bad.items()]
    return [Finding(f"Layers where an implementation is not PASS ({len(bad)}): "
                    + "; ".join(parts) + ".")]  # fmt: skip


def run_replay(
    config: StabilityConfig, progress: Progress | None = None, debug: bool = False
) -> Run:
    """The replay of config.inputs (reports are written by the caller)."""
    import torch

    from normbench.capture.cases import replay_cases
    from normbench.capture.report import findings as capture_findings
    from normbench.capture.report import layer_result, summaries
    from normbench.capture.store import read_capture
    from normbench.env import fingerprint

    start = time.perf_counter()
    arm_interpreter()
    capture = read_capture(config.inputs, "--inputs")
    rows = summaries(capture)
    sel = config.selection
    cases = replay_cases(capture.metas, sel, config.own_variants)
    judge = ReplayCase(capture, {s.layer: s for _, s in rows}, config.determinism)
    loop = CaseLoop(SUITE, progress, debug, result=StabilityResult, metric="verdict", unit="")
    results = loop.run(cases, judge)
    env = fingerprint(sel.device, torch.get_num_threads())
    head = [layer_result(layer, s) for layer, s in rows]
    run = Run(SUITE, env, config.to_dict(), [*head, *results], interrupted=loop.interrupted)
    run.findings.extend(capture_findings(capture, rows))  # run_stability adds the verdicts'
    run.wall_s = time.perf_counter() - start
    return run
