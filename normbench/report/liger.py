"""A Liger-Kernel-style CSV: the columns of Liger's published benchmark data
(benchmark/data/all_benchmark_data.csv in linkedin/Liger-Kernel), so normbench's numbers load
beside Liger's own with the same reader (docs/formats.md "Liger-Kernel's CSV").

One row per case and metric: kernel_name is Liger's name of the norm where Liger has one
(layer_norm, rms_norm, fused_add_rms_norm, group_norm), kernel_provider the backend,
kernel_operation_mode forward/backward/full, x the hidden size N, y_value_50/20/80 the median
and the p20/p80 quantiles (the quantiles Liger's triton.testing.do_bench calls ask for; a value
without a spread, such as a byte count, repeats the value, as Liger's memory rows do), and
extra_benchmark_config_str the rest of the case as JSON (M rows, dtype, eps, ...).

A time is Liger's `speed` metric in ms. Byte counts are in MB (2^20 bytes, Liger's unit) under
their normbench name: normbench's peak_bytes is the peak above the inputs and parameters, while
Liger's `memory` is torch's max_memory_allocated with the inputs included, so they are not
given one name. liger_version is left empty: normbench measured no Liger release of its own.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from normbench.report.merge import row_devices
from normbench.results.files import export_frame

if TYPE_CHECKING:
    from normbench.results import Run

# Liger's header, in its order.
COLUMNS = (
    "kernel_name", "kernel_provider", "kernel_operation_mode", "metric_name", "metric_unit",
    "x_name", "x_label", "x_value", "y_value_50", "y_value_20", "y_value_80",
    "extra_benchmark_config_str", "gpu_name", "timestamp", "liger_version",
)  # fmt: skip
KERNEL_NAMES = {"layernorm": "layer_norm", "rmsnorm": "rms_norm",
                "add_rmsnorm": "fused_add_rms_norm", "groupnorm": "group_norm"}  # fmt: skip
X_NAMES = {"rms_norm": "H", "fused_add_rms_norm": "H"}  # Liger's own; N for the others
PROVIDERS = {"compile": "torch_compile"}  # the same thing under Liger's name
MODES = {"fwd": "forward", "bwd": "backward", "fwd+bwd": "full"}
TORCH_DTYPES = {"fp32": "torch.float32", "fp16": "torch.float16", "bf16": "torch.bfloat16",
                "fp64": "torch.float64"}  # fmt: skip
# Without --metrics: the numbers Liger publishes (speed, and memory where measured).
DEFAULTS = {"speed": ("time", "peak_bytes"), "memory": ("peak_bytes",)}
MB = 2**20


def _eps(variant: str) -> float | None:
    from normbench.variants import VARIANTS

    v = VARIANTS.get(variant)
    return v.scalars.get("eps") if v is not None else None


def _timestamp(created: str) -> str:
    """The run's time as Liger writes it (%Y-%m-%d %H:%M:%S, local time)."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.strptime(created, "%Y-%m-%dT%H:%M:%S%z"))
    except ValueError:
        return created


def _number(v: Any) -> float | None:
    """A finite number, or None for a gap (None, NaN, pandas' NA) or anything else."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):  # pandas' NA refuses float()
        return None
    return f if math.isfinite(f) else None


def _config(r: Mapping[str, Any], env: Mapping[str, Any]) -> str:
    """The case beyond x: Liger's keys first (M, dtype, eps), then normbench's."""
    dtype = TORCH_DTYPES.get(str(r["dtype"]), str(r["dtype"]))
    config: dict[str, Any] = {"M": int(r["rows"]), "dtype": dtype}
    eps = _eps(str(r["variant"]))
    if eps is not None:
        config["eps"] = eps
    config.update(B=int(r["batch"]), T=int(r["seq"]))
    if _number(r.get("heads")) and int(r["heads"]) > 1:
        config["heads"] = int(r["heads"])
    for key in ("options", "cache", "dist", "case_id"):
        v = r.get(key)
        if isinstance(v, str) and v:
            config[key] = v
    if env.get("normbench"):
        config["normbench"] = env["normbench"]
    return json.dumps(config)


def _created(r: dict[str, Any]) -> str:
    """When a merged run's row was measured ("" in a plain run: the run's time)."""
    v = r.get("created")
    return v if isinstance(v, str) else ""


def rows(run: Run, metrics: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The run's rows in Liger's columns: measured values of cases with a hidden size."""
    frame = export_frame(run, metrics or DEFAULTS.get(run.suite, ()))
    records = frame.to_dict("records")
    names = row_devices(run, records)
    env = run.env
    out = []
    for r, gpu in zip(records, names, strict=True):
        value, dim = _number(r.get("value")), _number(r.get("dim"))
        if r.get("status") != "ok" or value is None or dim is None or _number(r["rows"]) is None:
            continue  # a case not measured, or a result that is no case of one shape
        metric, unit = str(r["metric"]), str(r.get("unit") or "")
        scale = 1.0
        if metric == "time":
            metric = "speed"
        elif unit == "B":
            unit, scale = "MB", 1 / MB
        kernel = KERNEL_NAMES.get(str(r["variant"]), str(r["variant"]))
        p20, p80 = _number(r.get("p20")), _number(r.get("p80"))
        out.append({
            "kernel_name": kernel,
            "kernel_provider": PROVIDERS.get(str(r["backend"]), str(r["backend"])),
            "kernel_operation_mode": MODES.get(str(r["mode"]), str(r["mode"])),
            "metric_name": metric, "metric_unit": unit,
            "x_name": X_NAMES.get(kernel, "N"), "x_label": "hidden size", "x_value": int(dim),
            "y_value_50": value * scale,
            "y_value_20": (p20 if p20 is not None else value) * scale,
            "y_value_80": (p80 if p80 is not None else value) * scale,
            "extra_benchmark_config_str": _config(r, env), "gpu_name": gpu,
            "timestamp": _timestamp(_created(r) or run.created), "liger_version": "",
        })  # fmt: skip
    return out


def render(run: Run, metrics: Sequence[str] = ()) -> str:
    import pandas as pd

    return pd.DataFrame(rows(run, metrics), columns=list(COLUMNS)).to_csv(index=False)
