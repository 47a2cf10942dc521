"""Audit the compiled Triton kernels for GPUs this machine may not have
(docs/numerics.md sections 5 and 8).

Every kernel configuration the launch table produces is compiled ahead of time for sm_80 / sm_90
(triton.compile with the JIT's own specializations), then read: registers per thread, spills
(stack frame bytes from `cuobjdump -res-usage`), shared memory, the width of every global load
and store of the big tensors (traced in the PTX), and the occupancy those numbers allow.
Compilation runs in worker processes (one per core) because Triton's compiler cannot run in a
process whose kernels were defined for the interpreter. Identical compilations (N = 5120, 6144
and 8192 share one) are done once per run; Triton's disk cache makes a second run fast.

Library only: the CLI renders the results (normbench.results.audit.AuditRow, one per
configuration). A configuration that cannot be compiled is a result with status "error" and the
reason, never an exception.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence

from normbench.pipe import Child, ChildExited, PipeError
from normbench.results import Status
from normbench.results.audit import AuditRow

SUITE = "audit"
ARCHS = ("sm_80", "sm_90")
DTYPES = ("fp32", "fp16", "bf16")
# The launch table's boundaries, plus N = 1000 (rows 16-byte aligned but N not a multiple of 16:
# the ALIGN hint's case) and N = 1001 (odd: no vector access is possible, shown honestly).
# Above 8192 the looped kernels: Llama 3 405B's 16384 and QuACK's widest test, 262144.
DEFAULT_DIMS = (128, 256, 512, 1000, 1001, 1024, 2048, 4096, 5120, 8192, 16384, 65536, 262144)

# Per-SM limits for occupancy: A100 (sm_80) and H100 (sm_90). Shared memory is the largest
# carve-out; the driver reserves 1 KiB of it per block.
_LIMITS = {
    "sm_80": {"warps": 64, "blocks": 32, "regs": 65536, "smem": 164 * 1024},
    "sm_90": {"warps": 64, "blocks": 32, "regs": 65536, "smem": 228 * 1024},
}
_RESERVED_SMEM = 1024
_REG_GRANULE = 256  # registers are allocated per warp in units of 256


def occupancy(arch: str, registers: int, shared_bytes: int, num_warps: int) -> int:
    """Resident warps per SM allowed by registers, shared memory, warp and block slots."""
    lim = _LIMITS[arch]
    regs_per_warp = -(-registers * 32 // _REG_GRANULE) * _REG_GRANULE
    by_regs = lim["regs"] // max(1, regs_per_warp * num_warps)
    by_smem = lim["smem"] // (shared_bytes + _RESERVED_SMEM)
    blocks = min(by_regs, by_smem, lim["warps"] // num_warps, lim["blocks"])
    return blocks * num_warps


def _validate(archs: Sequence[str], dtypes: Sequence[str], dims: Sequence[int]) -> None:
    from normbench.kernels.launch import MAX_N

    for a in archs:
        if a not in _LIMITS:
            raise ValueError(f"unknown arch {a!r}: choose from {', '.join(_LIMITS)}")
    for d in dtypes:
        if d not in DTYPES:
            raise ValueError(f"unknown dtype {d!r}: choose from {', '.join(DTYPES)}")
    for n in dims:
        if not 1 <= n <= MAX_N:
            raise ValueError(f"hidden size N={n} is outside 1..{MAX_N}, the kernels' range")


def _error_row(job: dict, reason: str) -> AuditRow:
    return AuditRow.of(
        job["kernel"], job["arch"], job["dtype"], job["n"], status=Status.ERROR, note=reason
    )


def _describe(ptr: str, access: dict[str, list[int]]) -> str:
    """'W ld 16B' / 'RSTD st 4B': the side tensors' widths, for the note."""
    parts = [f"{kind} {'|'.join(map(str, widths))}B" for kind, widths in access.items() if widths]
    return f"{ptr} {' '.join(parts)}"


def _row(job: dict, res: dict) -> AuditRow:
    if "error" in res:
        return _error_row(job, res["error"])
    spill = res["stack"] + res["local"]
    shared = res["shared_dynamic"] + res["shared_static"]
    main = [res["access"][p] for p in res["main_ptrs"] if p in res["access"]]
    loads = sorted({w for a in main for w in a["ld"]})
    stores = sorted({w for a in main for w in a["st"]})
    if not loads or not stores:
        return _error_row(job, "no global access of the main tensors found in the PTX")
    vector16 = loads == [16] and stores == [16]
    warps = occupancy(job["arch"], res["registers"], shared, res["num_warps"])
    others = ", ".join(
        _describe(p, a) for p, a in sorted(res["access"].items()) if p not in res["main_ptrs"]
    )
    notes = [f"widths {min(loads + stores)}-{max(loads + stores)}B"]
    if spill:
        notes.append(f"SPILLS {spill} B/thread")
    from normbench.kernels.aot import KERNELS_BY_NAME

    spec = KERNELS_BY_NAME[job["kernel"]]
    if spec.stage == "bwd":
        from normbench.kernels.launch import bwd_programs_per_sm

        wanted = bwd_programs_per_sm(job["n"], spec.split(job["dtype"]))
        resident = warps // res["num_warps"]
        if resident < wanted:
            notes.append(f"grid needs 2 waves: {wanted} programs/SM, {resident} resident")
    if not vector16:
        notes.append("narrow main-tensor access")
    notes.append(f"other: {others}" if others else "")
    return AuditRow.of(
        job["kernel"],
        job["arch"],
        job["dtype"],
        job["n"],
        block=res["block"],
        num_warps=res["num_warps"],
        registers=res["registers"],
        spill_bytes=spill,
        shared_bytes=shared,
        load_width_bytes=loads[0],
        store_width_bytes=stores[0],
        vector16=vector16,
        occupancy_warps=warps,
        occupancy_pct=round(100.0 * warps / _LIMITS[job["arch"]]["warps"], 1),
        note="; ".join(n for n in notes if n),
    )


def _compile_key(job: dict) -> tuple:
    """Everything the compiled code depends on: rows with equal keys share one compilation."""
    from normbench.kernels.aot import KERNELS_BY_NAME, launch_for, ptr_dtypes

    spec = KERNELS_BY_NAME[job["kernel"]]
    values, const, warps = launch_for(spec, job["dtype"], job["n"], job["arch"], job.get("sms"))
    ints = tuple(
        (k, v == 1, v % 16 == 0, v >= 2**31)
        for k, v in sorted(values.items())
        if isinstance(v, int)
    )
    return (
        spec.module,
        spec.fn,
        job["arch"],
        tuple(sorted(ptr_dtypes(spec, job["dtype"]).items())),
        warps,
        tuple(sorted(const.items())),
        ints,
    )


# A compile worker closed at the end of its queue has finished its last job: this bounds only a
# worker stuck in its shutdown.
_CLOSE_WAIT_S = 30.0


def _compiler() -> Child:
    """One `python -m normbench.kernels.aot` process (normbench.pipe), fed one job at a time."""
    return Child("normbench.kernels.aot", env=dict(os.environ, TRITON_INTERPRET="0"))


def _compile_all(jobs: list[dict], on_done: Callable[[dict, dict], None]) -> None:
    todo: queue.Queue[dict] = queue.Queue()
    for job in jobs:
        todo.put(job)
    lock = threading.Lock()

    def drain() -> None:
        worker = _compiler()
        try:
            while True:
                try:
                    job = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    res = worker.request(job)
                except PipeError as exc:
                    # This job is an error row; the rest get a fresh worker.
                    if isinstance(exc, ChildExited):
                        res = {"error": f"compile worker died: {worker.stderr_tail(300)}"}
                    else:
                        res = {"error": f"compile worker broke the protocol: {exc}"}
                    worker.close(_CLOSE_WAIT_S)
                    worker = _compiler()
                with lock:
                    on_done(job, res)
        finally:
            worker.close(_CLOSE_WAIT_S)

    n_workers = max(1, min(os.cpu_count() or 1, len(jobs)))
    threads = [threading.Thread(target=drain, daemon=True) for _ in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run_audit(
    archs: Sequence[str] = ARCHS,
    dtypes: Sequence[str] = DTYPES,
    dims: Sequence[int] | None = None,
    progress: Callable[[str], None] | None = None,
    sm_count: int | None = None,
) -> list[AuditRow]:
    """Compile and read every (kernel, arch, dtype, N) configuration; one result each, in
    order. `sm_count`: size the backward grids for a GPU with that many SMs instead of the
    arch's reference part (normbench.kernels.aot.SM_COUNT), as on the device the audit is
    checked against (tests/gpu/test_audit_truth_gpu.py)."""
    dims = list(DEFAULT_DIMS if dims is None else dims)
    _validate(archs, dtypes, dims)
    say = progress or (lambda _msg: None)
    start = time.perf_counter()
    try:
        from normbench.kernels.aot import KERNELS, tools_missing
    except ImportError as exc:  # no triton: every row says so
        kernels = [f"{s}_{k}" for s in ("rmsnorm", "layernorm") for k in ("fwd", "bwd")]
        jobs = [
            dict(kernel=k, arch=a, dtype=d, n=n) for a in archs for d in dtypes for n in dims
            for k in kernels
        ]  # fmt: skip
        return [_error_row(j, f"triton cannot be imported ({exc})") for j in jobs]
    jobs = [
        dict(kernel=k.name, arch=a, dtype=d, n=n)
        for a in archs
        for d in dtypes
        for n in dims
        for k in KERNELS
    ]
    if sm_count is not None:
        jobs = [dict(job, sms=sm_count) for job in jobs]
    from normbench.kernels import triton_problem_here

    missing = triton_problem_here() or tools_missing()
    if missing:
        return [_error_row(j, missing) for j in jobs]

    unique: dict[tuple, dict] = {}
    for job in jobs:
        unique.setdefault(_compile_key(job), dict(job, id=len(unique)))
    results: dict[int, dict] = {}

    def on_done(job: dict, res: dict) -> None:
        results[job["id"]] = res
        state = res.get("error", f"{res.get('registers')} regs")
        say(f"[{len(results)}/{len(unique)}] {job['kernel']} {job['arch']} {job['dtype']} "
            f"N={job['n']}: {state}")  # fmt: skip

    say(f"compiling {len(unique)} distinct configurations for {len(jobs)} rows")
    _compile_all(list(unique.values()), on_done)
    rows = [_row(job, results[unique[_compile_key(job)]["id"]]) for job in jobs]
    say(f"audit done in {time.perf_counter() - start:.1f} s")
    return rows
