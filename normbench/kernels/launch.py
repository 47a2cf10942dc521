"""The static launch table: tile shape and warps per kernel, keyed by hidden size N and dtype.

A static table (no autotuning) keeps the first call graph-capturable and makes the audit exact:
the audit compiles precisely the configurations this module returns. The numbers were tuned from
the audit's register and spill counts (`normbench audit`, sm_80/sm_90); see the notes below.
Pure Python on purpose: importable without torch or triton.
"""

from __future__ import annotations

from dataclasses import dataclass

# Up to this the whole row lives in registers of one program (one pass over memory). Wider rows
# take the looped kernels: the row is walked in column chunks of LOOP_BLOCK elements, statistics
# first, output second; the second pass re-reads the row of one program, which is still in L1/L2.
TILE_MAX_N = 8192
LOOP_BLOCK = 4096
# The looped design has no register limit; this is the widest row the tests and the audit cover
# (QuACK tests up to 262,144). Wider rows are refused rather than run untested.
MAX_N = 262144

# The integer arguments sized by the batch or the grid, per kernel stage, which the kernels declare
# do_not_specialize: the JIT compiles no divisible-by-16 or equal-to-1 variant of them, so the code
# is the same for every M and SM count and `normbench audit` compiles what runs whatever the batch
# (docs/numerics.md section 5). They bound loops and masks only; the row strides and N keep their
# specialization, which gives the vector accesses.
GRID_SIZED = {"fwd": ("M",), "bwd": ("M", "rows_per_program"), "reduce": ("P",)}

# Bytes per 16-byte vector access: 16 / element size lanes per thread are needed for a full vector.
_VECTOR_BYTES = 16


@dataclass(frozen=True)
class LaunchConfig:
    """One program's tile: `rows` x `block` elements, spread over `num_warps` warps."""

    block: int  # columns: next power of two >= N
    num_warps: int
    rows: int  # forward: rows per program; backward: rows per loop step


@dataclass(frozen=True)
class ReduceConfig:
    block_n: int  # columns per program
    block_p: int  # partial rows summed per loop step (fixed order: deterministic)
    num_warps: int


def block_for(n: int) -> int:
    """Next power of two >= n, at least 16 so a 16-byte fp32 vector always fits one row; above
    TILE_MAX_N the column chunk of the looped kernels."""
    check_n(n)
    if looped(n):
        return LOOP_BLOCK
    return max(16, 1 << (n - 1).bit_length())


def looped(n: int) -> bool:
    """True when rows of N elements take the looped (column-chunked) kernels."""
    return n > TILE_MAX_N


def check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"hidden size N={n} must be at least 1")
    if n > MAX_N:
        raise ValueError(
            f"hidden size N={n} exceeds {MAX_N:,}, the widest row these kernels are tested at; "
            "use another backend for wider rows"
        )


# Tuning notes. There is no GPU here, so the tables were tuned on the audit's numbers
# (`run_audit`, sm_80 and sm_90, N = 128..8192, fp32/fp16/bf16): every configuration below compiles
# with zero spills and 16-byte accesses of the big tensors (except odd N, where rows are not
# 16-byte aligned and no vector access is legal). Rules of thumb they encode:
# - each thread should hold at least one full 16-byte vector of every row it touches;
# - the whole row stays in registers, so warps grow with N to keep registers per thread well under
#   the 255 cap (a spilling kernel loses about half its bandwidth).

# Forward warps per BLOCK for (2-byte, 4-byte) elements. 8192 fp32 at 8 warps holds 32 fp32 values
# of x per thread plus w (about 64 registers); 16 warps halve that and keep 32-48 warps resident.
_FWD_WARPS: dict[int, tuple[int, int]] = {
    2048: (4, 8),
    4096: (8, 8),
    8192: (8, 16),
}
# Rows up to 1024 wide are packed several per program (a [rows, BLOCK] tile) so each thread still
# holds whole vectors and the grid is not a sea of tiny programs. Rows that are not 16-byte
# aligned (odd N) need one address per element: half the tile, else sm_90 spills (audit, N=1001).
_FWD_SMALL_TILE = 4096  # elements per program when BLOCK <= 1024
_FWD_SMALL_WARPS = 4


def fwd_config(n: int, elem_bytes: int, align: int | None = None) -> LaunchConfig:
    """`align`: vector_align of N and the row strides (default: contiguous rows)."""
    block = block_for(n)
    if looped(n):
        return LaunchConfig(block, _LOOP_WARPS, 1)
    if block <= 1024:
        align = vector_align(n, elem_bytes) if align is None else align
        aligned = align * elem_bytes >= _VECTOR_BYTES
        tile = _FWD_SMALL_TILE if aligned else _FWD_SMALL_TILE // 2
        return LaunchConfig(block, _FWD_SMALL_WARPS, max(1, tile // block))
    warps = _FWD_WARPS[block][0 if elem_bytes <= 2 else 1]
    return LaunchConfig(block, warps, 1)


# Backward holds more per row than forward: x, dy, w and the fp32 dW (and dB) accumulators.
# N = 8192 fp32: 8 warps need 217-242 registers (one 8-warp program per SM), 16 warps 109-124
# (no spills, 16 warps resident), 32 warps ~60 but one 1024-thread program moves no more bytes.
# N = 4096 fp32: 16 warps leave LayerNorm+add at 95 registers, one program per SM; 8 warps fit two.
_BWD_WARPS: dict[int, tuple[int, int]] = {
    2048: (8, 8),
    4096: (8, 8),
    8192: (16, 16),
}
# Looped kernels (N > 8192): one row per program, chunks of LOOP_BLOCK elements; 8 warps hold
# 16 fp32 values per thread of each chunk, as the tile kernels do at N = 4096.
_LOOP_WARPS = 8
_LOOP_BWD_PROGRAMS_PER_SM = 2
# Small rows: a 1024-element tile keeps registers at 55-72 (a 2048 tile needed 96-128 and left
# only 4 programs resident per SM).
_BWD_SMALL_TILE = 1024
_BWD_SMALL_WARPS = 4
# Programs per SM in the backward grid: at most what the audit shows resident at once, so the grid
# is one wave (a second partial wave would double the time of the slowest SM).
_BWD_PROGRAMS_PER_SM: dict[int, int] = {1024: 4, 2048: 3, 4096: 2, 8192: 1}


def bwd_config(n: int, elem_bytes: int, split: bool = False) -> LaunchConfig:
    """`split`: dx and the residual's gradient are stored apart (their dtypes differ); at
    N = 4096 LayerNorm+add with a 16-bit x and an fp32 residual then needs 169 registers at 8
    warps (8 warps resident), 101 at 16 warps (16 resident, one program per SM)."""
    block = block_for(n)
    if looped(n):
        return LaunchConfig(block, _LOOP_WARPS, 1)
    if block <= 1024:
        return LaunchConfig(block, _BWD_SMALL_WARPS, max(1, _BWD_SMALL_TILE // block))
    warps = _BWD_WARPS[block][0 if elem_bytes <= 2 else 1]
    if split and block == 4096:
        warps = 16
    return LaunchConfig(block, warps, 1)


def bwd_programs_per_sm(n: int, split: bool = False) -> int:
    if looped(n):
        return _LOOP_BWD_PROGRAMS_PER_SM
    if split and block_for(n) == 4096:
        return 1  # see bwd_config
    return _BWD_PROGRAMS_PER_SM[max(1024, block_for(n))]


def bwd_grid(
    m: int, n: int, elem_bytes: int, sm_count: int, groups: int = 1, split: bool = False
) -> tuple[int, int]:
    """(programs, rows per program) for the fused backward, per group of rows (a head of a
    per-head weight: the grid is programs x groups).

    Each program owns a contiguous row range, a multiple of the tile rows, and writes one fp32
    partial row of dW (and dB): one wave of programs, no more partials than that.
    """
    cfg = bwd_config(n, elem_bytes, split)
    if m <= 0:
        return 0, 0
    tiles = -(-m // cfg.rows)
    wave = max(1, sm_count * bwd_programs_per_sm(n, split) // groups)
    programs = max(1, min(tiles, wave))
    tiles_per_program = -(-tiles // programs)
    programs = -(-tiles // tiles_per_program)  # drop programs that would get no rows
    return programs, tiles_per_program * cfg.rows


def reduce_config(n: int, out_elem_bytes: int) -> ReduceConfig:
    """Column tile wide enough that the final dW store is a full 16-byte vector per thread.

    Below 32 vectors per row (N < 256 in 16-bit, N < 128 in fp32) one warp cannot give every lane
    a whole vector; that store is at most 256 bytes in all.
    """
    lanes = _VECTOR_BYTES // min(out_elem_bytes, 4)
    block_n = min(lanes * 32 * 4, block_for(n))
    num_warps = max(1, min(4, block_n // (lanes * 32)))
    block_p = min(8, max(1, 4096 // block_n))
    return ReduceConfig(block_n, block_p, num_warps)


def partial_stride(n: int) -> int:
    """Row stride of the fp32 partial buffer: padded to 16 elements so it is always 16B aligned."""
    return -(-n // 16) * 16


def vector_align(n: int, elem_bytes: int, *strides: int) -> int:
    """Largest power of two (elements, up to one 16-byte vector) dividing N and every row stride.

    The JIT only proves alignment for integers divisible by 16; N = 1000 in fp16 has 16-byte
    aligned rows all the same. The kernels take this as a constexpr and rewrite N and the strides
    as multiples of it, which lets the compiler emit full-width vector accesses.
    """
    v = max(1, _VECTOR_BYTES // elem_bytes)
    while v > 1 and (n % v or any(s % v for s in strides)):
        v //= 2
    return v
