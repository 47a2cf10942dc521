"""Two test sessions, because Triton decides interpreter or compiler once per process.

Triton reads TRITON_INTERPRET when each @triton.jit decorator runs (normbench.kernels sets it
only where no GPU is present), so one process cannot test the interpreted kernels on CPU tensors
and the compiled ones on CUDA tensors. The split is per session:

- The CPU suite (`pytest`, `make test`): every machine runs it as a machine without a GPU does.
  CUDA is hidden (CUDA_VISIBLE_DEVICES="") and the kernels run in Triton's interpreter
  (TRITON_INTERPRET=1), both set here before any test imports torch's CUDA or the kernels, so its
  CPU tensors, CPU defaults and `--device auto` mean the same on a GPU box as here. Subprocesses
  (workers, the CLI) inherit both.
- The GPU suite (`pytest -m gpu`, tests/gpu/): both left alone, the compiled kernels on CUDA
  tensors. Without a CUDA device (or with TRITON_INTERPRET set by the user) each GPU test is
  collected and skipped with the reason; in the CPU suite each says how to run it.
"""

import os

import pytest

GPU_ONLY = "gpu"
_session = {"gpu": False, "interpret": "0"}


def selects_gpu_only(markexpr: str) -> bool:
    """True when `-m markexpr` selects a test marked gpu alone and not an unmarked one."""
    if not markexpr.strip():
        return False
    try:  # pytest's own evaluator (private, stable since pytest 6); a plain reading otherwise
        from _pytest.mark.expression import Expression

        expr = Expression.compile(markexpr)
        return bool(expr.evaluate(lambda name, **_: name == GPU_ONLY)) and not expr.evaluate(
            lambda name, **_: False
        )
    except Exception:
        return GPU_ONLY in markexpr.split() and f"not {GPU_ONLY}" not in markexpr


def pytest_configure(config):
    _session["gpu"] = selects_gpu_only(config.getoption("markexpr", "") or "")
    # As the user set it, before a test module imports normbench.kernels (which sets it where
    # there is no GPU).
    _session["interpret"] = os.environ.get("TRITON_INTERPRET", "0")
    if not _session["gpu"]:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ["TRITON_INTERPRET"] = "1"


def gpu_skip_reason() -> str | None:
    """Why a GPU test cannot run in this session, or None."""
    if not _session["gpu"]:
        return (
            "a GPU test: run it with `pytest -m gpu` (the CPU suite hides CUDA and runs the "
            "kernels in Triton's interpreter)"
        )
    import torch

    if not torch.cuda.is_available():
        why = "this torch has no CUDA support" if torch.version.cuda is None else "no GPU found"
        return f"no CUDA device ({why})"
    if _session["interpret"].lower() in ("1", "true", "on", "yes"):
        return "TRITON_INTERPRET is set: the GPU tests check the compiled kernels; unset it"
    return None


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if item.get_closest_marker(GPU_ONLY)]
    if not gpu_items:
        return
    reason = gpu_skip_reason()
    if reason:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=reason), append=False)  # before skipifs


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # The copy-bandwidth cache lives under NORMBENCH_CACHE_DIR; tests never touch the user's.
    monkeypatch.setenv("NORMBENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def _signal_handlers():
    # The command line leaves the stop signals ignored after a stop (it is about to exit:
    # normbench.signals); a test that stops a command in this process must not hand that on
    # to the next test, nor to the processes it starts (they inherit an ignore).
    import signal

    from normbench.signals import STOP_SIGNALS

    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    yield
    for s, handler in before.items():
        if handler is not None and signal.getsignal(s) is not handler:
            signal.signal(s, handler)
