"""A captured layer's summary as a result (docs/capture.md "The summary"): one per layer, in
the reports of `normbench capture` and of `stability --inputs`.

Measurements: `max_abs` (the headline: the largest finite |x|), `top_share` (the share of the
energy sum(x^2) held by the largest channels, 0 to 1), `mean_std` (the median over rows of
|mean| / std), `nonfinite` (elements that are inf or NaN) and `nearest_distance` (the feature
distance to the nearest synthetic input). The fields say what the layer is and implies."""

from __future__ import annotations

from dataclasses import dataclass

from normbench.results.model import CaseResult, result_kind


@result_kind("captured_layer")
@dataclass(frozen=True)
class CapturedLayerResult(CaseResult):
    layer: str | None = None  # the module's path in the model
    module: str | None = None  # its class
    eps: float | None = None
    cast: str | None = None  # fp32, llama (x_hat rounded before w) or gemma (1 + w)
    residual: str | None = None  # pre, post, final or unknown
    top_channels: str | None = None  # "308: 41%, 12: 3.0%, 77: 2.1%"
    nearest: str | None = None  # the synthetic input it most resembles
    grad: bool | None = None  # dy recorded

    @property
    def norm(self) -> str:
        return f"{self.variant} (1 + w)" if self.cast == "gemma" else self.variant
