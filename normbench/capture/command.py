"""`normbench capture` as a library call: check --out, load MODEL, move it to the dtype and
device asked for, capture every norm call on its batch, write the file (also what ran before a
failure) and build the summary run. The CLI renders the run and turns a failure into its
sentence and exit code 2."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normbench.errors import UsageError

if TYPE_CHECKING:
    from normbench.capture.records import Capture
    from normbench.results import Run


@dataclass(frozen=True)
class CaptureOutcome:
    capture: Capture
    path: Path | None  # None: no layer ran before the failure, nothing written
    run: Run

    def failure(self) -> str | None:
        """The failure as the one sentence the CLI prints (exit 2), or None."""
        c = self.capture
        if c.complete:
            return None
        if self.path is None:
            return f"{c.error}; nothing was captured"
        n = len(c.layers)
        return (
            f"{c.error}; the {n} layer{'s' if n != 1 else ''} captured before it are in {self.path}"
        )


def _move(value: Any, dtype: Any, device: str) -> Any:
    """The batch on `device`, its floating tensors in `dtype` (token ids stay integers)."""
    import torch

    if isinstance(value, torch.Tensor):
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        return value.to(device)
    if isinstance(value, dict):
        return {k: _move(v, dtype, device) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_move(v, dtype, device) for v in value)
    return value


def capture_to_file(
    spec: str,
    out: str | Path,
    *,
    texts: tuple[str, ...] = (),
    grads: bool = False,
    dtype: str | None = None,
    device: str = "cpu",
    seed: int = 0,
) -> CaptureOutcome:
    """Capture MODEL's norm layers to `out` (see the module docstring)."""
    import torch

    from normbench.capture.record import capture_model
    from normbench.capture.report import capture_run
    from normbench.capture.spec import load_model
    from normbench.capture.store import check_out, need_safetensors, write_capture
    from normbench.dtypes import canonical, to_torch
    from normbench.validate import check_seed

    start = time.perf_counter()
    need_safetensors("normbench capture")
    check_seed(seed)
    torch_dtype = to_torch(canonical(dtype)) if dtype else None
    path = check_out(Path(out))
    torch.manual_seed(seed)  # a factory's random weights and inputs
    loaded = load_model(spec, tuple(texts))
    model = loaded.module.to(device)
    if torch_dtype is not None:
        model = model.to(torch_dtype)
    batch = _move(loaded.batch, torch_dtype, device)
    note = loaded.batch_note + (f", run in {dtype}" if dtype else "")
    capture = capture_model(model, batch, label=loaded.label, batch_note=note, grads=grads)
    written = write_capture(capture, path) if capture.layers else None
    if not capture.layers and capture.complete:
        raise UsageError(f"{loaded.label}: no norm call could be captured: "
                         + "; ".join(capture.ignored))  # fmt: skip
    run = capture_run(capture, str(written or path), device, time.perf_counter() - start)
    return CaptureOutcome(capture, written, run)
