"""Helpers the GPU tests share (not a conftest: tests/ has one too, and `import conftest`
would find either)."""

from __future__ import annotations


def selection(variants, backends, dtypes, dims, rows=(8, 2048), modes=("fwd",), device="cuda",
              **kw):  # fmt: skip
    """A Selection as the tests spell it: `rows` is (batch, seq)."""
    from normbench.config import Selection

    return Selection(tuple(variants), tuple(backends), tuple(dtypes), tuple(dims), (rows[0],),
                     (rows[1],), tuple(modes), device=device, **kw)  # fmt: skip


def by_case(results) -> dict:
    """{(variant, backend, dtype, dim, mode): result}."""
    return {(r.variant, r.backend, r.dtype, r.shape.dim, r.mode): r for r in results}
