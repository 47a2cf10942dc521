"""The Triton kernels' layer options against the plain layer, side by side in one run.

    .venv/bin/python benchmarks/kernel_options.py            # on a CUDA GPU: forward and backward
                                                             # TB/s, plain vs every option
    .venv/bin/python benchmarks/kernel_options.py --audit    # any machine: registers, spills,
                                                             # occupancy of the same configurations

Prints Markdown tables (recorded in docs/performance.md with the device fingerprint). The timed
part runs `normbench speed` once per option set on the same shapes (bf16, 8 x 2048 rows; QK-norm
as 8 x 2048 x 8 heads x 128), so every figure beside the plain layer's comes from one session.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

# (label, normbench speed options): the plain layer first, then each option alone.
CONFIGS = [
    ("plain", ["--variant", "rmsnorm,layernorm,add_rmsnorm,add_layernorm"]),
    ("fp32 weight", ["--variant", "rmsnorm,layernorm", "--weight-dtype", "fp32"]),
    ("no weight", ["--variant", "rmsnorm,layernorm", "--no-weight"]),
    ("rms bias", ["--variant", "rmsnorm", "--rms-bias", "--weight-dtype", "fp32"]),
    ("fp32 residual", ["--variant", "add_rmsnorm,add_layernorm", "--residual-dtype", "fp32"]),
    ("llama cast", ["--variant", "rmsnorm", "--backend", "triton-llama"]),
    ("QK-norm", ["--variant", "rmsnorm", "--heads", "8", "--dim", "128", "--weight-dtype", "fp32"]),
]
DIMS = ["--dim", "1024,4096,8192,16384,32768"]  # unless the option set names its own


def timed(device: str, budget: float) -> None:
    print("| option | case | mode | median | GB/s | % copy bw |")
    print("|---|---|---|---|---|---|")
    for label, extra in CONFIGS:
        with tempfile.TemporaryDirectory() as out:
            cmd = [
                sys.executable, "-m", "normbench", "speed", "--device", device,
                "--backend", "triton", "--dtype", "bf16", "--batch", "8",
                "--seq", "2048", "--mode", "fwd,bwd", "--time-budget", str(budget),
                "--format", "json", "--out", out, *([] if "--dim" in extra else DIMS), *extra,
            ]  # fmt: skip
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            run = json.loads(next(Path(out).glob("*.json")).read_text())
        rows = {(r["case_id"], r["metric"]): r for r in run["rows"]}
        for (case, metric), r in rows.items():
            if metric != "time":
                continue
            if r["status"] != "ok":
                print(f"| {label} | {case} | {r['mode']} | {r['status']}: {r['note'][:60]} | | |")
                continue
            gbps = rows.get((case, "bandwidth"), {}).get("value")
            pct = rows.get((case, "pct_copy_bw"), {}).get("value")
            print(
                f"| {label} | {case} | {r['mode']} | {r['value'] * 1e3:.1f} us | "
                f"{gbps or 0:.0f} | {pct or 0:.1f} |"
            )


def audit(arch: str) -> None:
    from normbench.kernels.aot import KERNELS
    from normbench.suites.audit import run_audit

    dims = [4096, 8192, 16384, 65536, 262144]
    rows = run_audit(archs=[arch], dtypes=["bf16"], dims=dims)
    print(f"{arch}, bf16 x: registers / spill bytes / resident warps per SM (16-byte access?)\n")
    print("| kernel | " + " | ".join(f"N={n}" for n in dims) + " |")
    print("|---|" + "---|" * len(dims))
    by = {(r.kernel, r.dim): r for r in rows}
    for spec in KERNELS:
        cells = []
        for n in dims:
            r = by[(spec.name, n)]
            if r.status != "ok":
                cells.append(f"error: {r.note[:40]}")
                continue
            vec = "" if r.vector16 else " narrow"
            cells.append(f"{r.registers} / {r.spill_bytes} / {r.occupancy_warps}{vec}")
        print(f"| {spec.name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audit", action="store_true", help="compile only (no GPU needed)")
    parser.add_argument("--arch", default="sm_90")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--time-budget", type=float, default=0.5)
    ns = parser.parse_args()
    if ns.audit:
        audit(ns.arch)
        return
    import torch

    if not torch.cuda.is_available():
        sys.exit("kernel_options.py: timing needs a CUDA GPU (the interpreter is never timed); "
                 "--audit runs anywhere")  # fmt: skip
    timed(ns.device, ns.time_budget)


if __name__ == "__main__":
    main()
