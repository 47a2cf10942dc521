"""Frozen configuration objects and the parsing of list options ("1024,4096", "fp16,bf16").

Every check that can refuse input lives here, so the library and the CLI refuse the same things
with the same sentence; normbench.config_args turns the options as given into these, with each
suite's defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from normbench.dtypes import canonical, itemsize
from normbench.errors import UsageError
from normbench.formats import DEFAULT_FORMATS, DEFAULT_OUT
from normbench.options import NormOptions, check_options
from normbench.validate import check_seconds, check_seed, check_threads, given, unique_ints
from normbench.variants.base import MODES, Shape

MAX_DIM = 1 << 20
DEFAULT_THRESHOLD = "5%"  # the regression gate's margin (docs/numerics.md section 7)
Strings = str | Sequence[str] | None  # an option as typed: "a,b", repeated (["a", "b,c"]) or unset


def split(text: str | Iterable[str] | None) -> list[str]:
    """'a,b c' or ['a,b', 'c'] -> ['a', 'b', 'c'] (options may repeat or take comma lists)."""
    if text is None:
        return []
    parts = [text] if isinstance(text, str) else list(text)
    return [s for p in parts for s in p.replace(" ", ",").split(",") if s.strip()]


def parse_ints(text: str | Iterable[str] | None, option: str) -> list[int]:
    """A whole-number list option -> its positive values, repeats dropped in order; a value
    given that names nothing is refused (normbench.validate.given)."""
    out = []
    for item in given(text, option):
        try:
            value = int(item)
        except ValueError:
            raise UsageError(f"{option} expects whole numbers, got {item!r}") from None
        if value <= 0:
            raise UsageError(f"{option} must be a positive integer, got {value}")
        if option == "--dim" and value > MAX_DIM:
            raise UsageError(f"--dim {value} is larger than the supported {MAX_DIM}")
        out.append(value)
    return unique_ints(out)


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass(frozen=True)
class Selection:
    """Which cases a suite runs: the options `speed`, `memory` and `stability` share."""

    variants: tuple[str, ...]
    backends: tuple[str, ...]
    dtypes: tuple[str, ...]
    dims: tuple[int, ...]
    batches: tuple[int, ...]
    seqs: tuple[int, ...]
    modes: tuple[str, ...]
    device: str = "cpu"
    pattern: str | None = None
    seed: int = 0
    # The layer options (no weight, weight and residual dtypes, a bias on RMSNorm) and the head
    # counts of QK-norm shapes (1: plain rows).
    options: NormOptions = NormOptions()
    heads: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        from normbench.registry import get_backend
        from normbench.variants import get_variant

        for v in self.variants:
            get_variant(v)
        for b in self.backends:
            get_backend(b)
        for d in self.dtypes:
            canonical(d)
        for m in self.modes:
            if m not in MODES:
                raise UsageError(f"unknown mode {m!r}: choose from {', '.join(MODES)}")
        for name, values in (("--variant", self.variants), ("--backend", self.backends),
                             ("--dtype", self.dtypes), ("--dim", self.dims),
                             ("--batch", self.batches), ("--seq", self.seqs),
                             ("--mode", self.modes), ("--heads", self.heads)):  # fmt: skip
            if not values:
                raise UsageError(f"{name} selects nothing")
        check_options(self.options, self.variants, self.heads)
        check_seed(self.seed)

    @property
    def shapes(self) -> list[Shape]:
        return [
            Shape(b, s, n, h)
            for b in self.batches
            for s in self.seqs
            for h in self.heads
            for n in self.dims
        ]

    def cases(self, dists: tuple[str, ...] = ("normal",)):
        from normbench.cases import expand

        cases = expand(
            list(self.variants), list(self.backends), list(self.dtypes), self.shapes,
            list(self.modes), self.device, dists, self.pattern, self.options,
        )  # fmt: skip
        if not cases:
            raise UsageError(f"--filter {self.pattern!r} matches none of the selected cases")
        return cases

    def to_dict(self) -> dict:
        return asdict(self)


def check_device_dtypes(device: str, dtypes: Iterable[str]) -> None:
    """Refuse a dtype the device cannot compute in natively."""
    if not device.startswith("cuda") or "bf16" not in dtypes:
        return
    import torch

    from normbench.machine_cuda import cuda_index

    index = cuda_index(device)
    if not native_bf16(index):
        major, minor = torch.cuda.get_device_capability(index)
        name = torch.cuda.get_device_name(index)
        raise UsageError(
            f"--dtype bf16: {name} ({device}, sm_{major}{minor}) has no native bfloat16 "
            "(needs sm_80 or newer)"
        )


def native_bf16(index: int) -> bool:
    """Whether CUDA device `index` computes in bf16 natively. Not torch.cuda.is_bf16_supported()
    alone: by default it counts emulation (true on any GPU) and asks about the current device,
    not the selected one (issue 21). NVIDIA: compute capability 8.0 or newer; ROCm: torch's
    answer for that device."""
    import torch

    if getattr(torch.version, "hip", None):
        with torch.cuda.device(index):
            try:
                return bool(torch.cuda.is_bf16_supported(including_emulation=False))
            except TypeError:  # a torch before the including_emulation argument
                return bool(torch.cuda.is_bf16_supported())
    return torch.cuda.get_device_capability(index) >= (8, 0)


def case_bytes(shape: Shape, dtype: str, per_element_bytes: int = 96) -> int:
    """About what one case holds on its device: the inputs, outputs and gradients in the case
    dtype plus the fp64 oracle and its gradients, `per_element_bytes` per activation element
    plus 8 copies in the case dtype."""
    return shape.rows * shape.dim * (per_element_bytes + 8 * itemsize(dtype))


def check_fits(selection: Selection, per_element_bytes: int = 96) -> None:
    """Refuse up front a selection none of whose cases can fit in the device's memory. When only
    some shapes are too big the run goes on and the suites skip those cases with the reason
    (suites.common.too_big)."""
    from normbench.env import available_memory
    from normbench.fmt import fmt_bytes

    avail = available_memory(selection.device)
    smallest = min(selection.shapes, key=lambda s: s.rows * s.dim)
    dtype = min(selection.dtypes, key=itemsize)
    need = case_bytes(smallest, dtype, per_element_bytes)
    if need > 0.9 * avail:
        which = "the smallest selected shape" if len(selection.shapes) > 1 else "shape"
        raise UsageError(
            f"{which} {smallest} (batch x seq x dim) needs about {fmt_bytes(need)} but "
            f"{selection.device} has {fmt_bytes(avail)} available: lower --dim, --batch or --seq"
        )


CACHE_STATES = ("cold", "hot")


@dataclass(frozen=True)
class SpeedConfig:
    selection: Selection
    threads: int
    time_budget: float = 1.0
    quick: bool = False
    # "cold": every call reads inputs the caches do not hold (docs/numerics.md section 6);
    # "hot": the same inputs back to back.
    cache: str = "cold"
    # CUDA: replay short calls from a CUDA graph ("auto": when a call is short; "on", "off").
    cuda_graph: str = "auto"
    out: Path = DEFAULT_OUT
    formats: tuple[str, ...] = DEFAULT_FORMATS
    memory: bool = False
    plot: bool = False
    extra: dict = field(default_factory=dict)
    # --shapes-from: a capture file whose layers' shapes are the cases (docs/capture.md "The
    # model's shapes"), each as its own variant unless --variant was given (own_variants False).
    shapes_from: str | None = None
    own_variants: bool = True

    def __post_init__(self) -> None:
        check_seconds(self.time_budget, "--time-budget")
        check_threads(self.threads)
        if self.cache not in CACHE_STATES:
            raise UsageError(f"--cache {self.cache!r}: choose from {', '.join(CACHE_STATES)}")
        from normbench.timing_cuda import GRAPH_CHOICES

        if self.cuda_graph not in GRAPH_CHOICES:
            raise UsageError(
                f"--cuda-graph {self.cuda_graph!r}: choose from {', '.join(GRAPH_CHOICES)}"
            )

    @property
    def hot(self) -> bool:
        return self.cache == "hot"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        d["hot"] = self.hot  # what runs before the cache states recorded (and older readers know)
        return d


SWEEP_LIMIT = 150  # |k| beyond 2^150 every dtype has overflowed or flushed to zero


def parse_sweep_range(text: str) -> tuple[int, ...]:
    """'-24:16' (or '-24..16') -> the exponents k = -24 ... 16 of the 2^k range sweep."""
    sep = ".." if ".." in text else ":"
    parts = text.strip().split(sep)
    try:
        lo, hi = (int(x) for x in parts)
    except ValueError:
        raise UsageError(
            f"--sweep-range expects LO:HI in whole powers of two, e.g. -24:16; got {text!r}"
        ) from None
    if lo > hi:
        raise UsageError(f"--sweep-range {text}: LO ({lo}) is above HI ({hi})")
    if max(abs(lo), abs(hi)) > SWEEP_LIMIT:
        raise UsageError(f"--sweep-range {text}: exponents must lie within +-{SWEEP_LIMIT}")
    return tuple(range(lo, hi + 1))


@dataclass(frozen=True)
class StabilityConfig:
    selection: Selection
    dists: tuple[str, ...]
    sweep: tuple[int, ...] = ()  # exponents k of the 2^k range sweep; empty: no sweep
    determinism: bool = True
    fail_on: str | None = None
    out: Path = DEFAULT_OUT
    formats: tuple[str, ...] = DEFAULT_FORMATS
    # --inputs: a capture file whose layers are replayed instead of the synthetic inputs
    # (docs/capture.md "Replay"), each as its own variant unless --variant was given.
    inputs: str | None = None
    own_variants: bool = True

    def __post_init__(self) -> None:
        from normbench.inputs import get_distribution

        if not self.dists:
            raise UsageError("--dist selects nothing")
        for d in self.dists:
            get_distribution(d)
        if self.fail_on is not None and self.fail_on not in ("FAIL", "WARN"):
            raise UsageError(f"--fail-on {self.fail_on!r}: choose from FAIL, WARN")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        return d
