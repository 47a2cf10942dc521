"""Real activations: a model's normalization layers recorded on a batch (`normbench capture`)
and read back for the stability replay and the speed suite's model shapes (docs/capture.md).

spec: MODEL to a module and its batch; find: which modules are norms, what each computes;
residual: where each residual add sits; record: the hooks and the forward (and backward);
records: what a capture holds; store: the safetensors file; summary: what a person reads per
layer; cases: captured layers as cases; report: the summary as results; command: the whole
`capture` as one call.
"""

from normbench.capture.records import Capture, CapturedLayer, CaptureMeta, LayerMeta
from normbench.capture.store import read_capture, read_meta, write_capture

__all__ = ["Capture", "CaptureMeta", "CapturedLayer", "LayerMeta", "read_capture", "read_meta",
           "write_capture"]  # fmt: skip
