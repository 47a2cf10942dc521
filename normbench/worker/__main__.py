"""The worker's end of `normbench ab` across installs: `python -m normbench.worker`.

It answers the parent's requests (normbench.worker: `hello`, `setup`, `block`, `exit`) one JSON
line each, over normbench.pipe. This program, not the `normbench.worker` package the ab suite
imports, is what depends on the suite (its gate and warm-up), so imports run one way: suites.ab
-> normbench.worker, and this entry point -> suites.ab. The suite is imported when the first
request needs it, not at the top: torch must not be imported before prepare_cpu_memory(), and a
failure there (a plugin, a broken install) is then answered as one sentence.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from normbench.errors import NormbenchError, describe_error
from normbench.pipe import serve
from normbench.worker import PROTOCOL


class Server:
    """The worker's state: its plugins, its side's backend and the case set up last."""

    def __init__(self) -> None:
        self.backend: str | None = None
        self.ready = None
        self.cache = None

    def hello(self, spec: str, plugins: list[str], threads: int) -> dict[str, Any]:
        import torch

        import normbench
        from normbench.env import fingerprint
        from normbench.plugins import load_plugins
        from normbench.suites.ab import resolve_side

        torch.set_num_threads(threads)
        if plugins:
            load_plugins(plugins)
        # An empty spec (`@PATH` alone): each case's own backend, from this install.
        self.backend = resolve_side(spec, "backend") if spec else None
        env = fingerprint("cpu", threads)
        return {
            "protocol": PROTOCOL,
            "backend": self.backend or "",
            "normbench_file": str(Path(normbench.__file__).resolve().parent),
            "env": {k: env[k] for k in ("normbench", "python", "torch", "triton")},
        }

    def setup(self, case: dict[str, Any], seed: int, timing: dict[str, Any]) -> dict[str, Any]:
        from dataclasses import fields

        from normbench.cases import Case
        from normbench.suites.ab_timing import setup_side
        from normbench.suites.common import PreparedCache
        from normbench.timing import TimingConfig
        from normbench.variants.base import Shape

        backend = self.backend or case["backend"]
        c = Case(**{**case, "shape": Shape(*case["shape"]), "backend": backend})
        if self.cache is None or self.cache.seed != seed:
            self.cache = PreparedCache(seed)
        # Fields a newer parent may send that this worker does not know are left out.
        known = {f.name for f in fields(TimingConfig)}
        config = TimingConfig(**{k: v for k, v in timing.items() if k in known})
        self.ready = setup_side(c, self.cache, config)
        return self.ready.to_dict()

    def block(self, k: int) -> dict[str, Any]:
        from normbench.timing import no_gc

        if self.ready is None or self.ready.take is None:
            return {"fatal": "block before a successful setup"}
        # The first sample after the other worker's turn is a re-warm-up (measured: its median
        # was 1.1 ms where the rest of the block took 0.68, eager RMSNorm 4 x 512 x 1024, 2
        # threads): caches and TLB hold the other process's data and the threads were asleep.
        # It is taken and dropped, as pyperf drops each process's warm-up values.
        with no_gc():
            return {"samples": self.ready.take(k + 1)[1:]}

    def handle(self, req: dict[str, Any]) -> dict[str, Any] | None:
        """One request's answer; None for `exit`. A failure is `{"fatal": sentence}` and the
        worker goes on."""
        op = req.pop("op", None)
        if op == "exit":
            return None
        if op not in ("hello", "setup", "block"):
            return {"fatal": f"unknown request {op!r}"}
        try:
            return getattr(self, op)(**req)
        except NormbenchError as exc:  # already one sentence
            return {"fatal": str(exc)}
        except Exception as exc:  # noqa: BLE001 - reported to the parent as one sentence
            return {"fatal": describe_error(exc)}


def main() -> None:
    """Answer requests on stdin until `exit` or end of input."""
    from normbench.env import prepare_cpu_memory

    prepare_cpu_memory()
    with contextlib.suppress(KeyboardInterrupt):  # the parent's Ctrl-C reaches the group
        serve(Server().handle)


if __name__ == "__main__":
    main()
