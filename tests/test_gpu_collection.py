"""The GPU tests cannot rot unseen: `pytest -m gpu --collect-only` (what CI runs, .ci/run) must
collect every one of them, per suite, on this machine without a GPU, and each file in tests/gpu
is marked gpu as a whole."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

GPU_DIR = Path(__file__).parent / "gpu"
# Tests per suite; a file that stops importing, or a test that vanishes, changes a count.
EXPECTED = {
    "test_ab_compare_gpu.py": 4,
    "test_audit_truth_gpu.py": 1,
    "test_device_gpu.py": 7,
    "test_env_gpu.py": 2,
    "test_memory_gpu.py": 5,
    "test_speed_gpu.py": 5,
    "test_stability_gpu.py": 1,
    "test_torchscript_gpu.py": 1,
}


def test_every_gpu_test_is_collected_per_suite():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "gpu", "--collect-only", "-q",
         "-p", "no:cacheprovider", str(GPU_DIR)],
        capture_output=True, text=True, cwd=GPU_DIR.parent.parent, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert Counter(Path(i.split("::")[0]).name for i in ids) == EXPECTED
    assert f"{sum(EXPECTED.values())} tests collected" in proc.stdout


def test_each_gpu_suite_is_marked_gpu_as_a_whole():
    files = sorted(p.name for p in GPU_DIR.glob("test_*.py"))
    assert files == sorted(EXPECTED)
    for name in files:
        assert "\npytestmark = pytest.mark.gpu\n" in (GPU_DIR / name).read_text(), name
