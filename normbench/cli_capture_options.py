"""The options of `normbench capture` (docs/capture.md "MODEL"), declared as normbench.cli_options
declares the shared ones; `--device` and `--seed` are the shared declarations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Opt = typer.Option
ModelArg = Annotated[
    str,
    typer.Argument(help="pkg.module:factory or file.py:factory (returns the module and its "
                   "batch), a Hugging Face model folder, or an installed package that ships one."),
]  # fmt: skip
CaptureOutOpt = Annotated[
    Path, Opt("--out", help="The capture file to write (.safetensors); never overwritten.")
]
TextOpt = Annotated[
    list[str] | None,
    Opt("--text", help="A sentence of the batch (repeatable), for a Hugging Face model; default: "
        "four built-in sentences."),
]  # fmt: skip
GradsOpt = Annotated[
    bool,
    Opt("--grads", help="Also record the gradient at each norm's output, from the loss "
        "0.5 * sum(out^2) of the model's first output."),
]  # fmt: skip
CaptureDtypeOpt = Annotated[
    str | None, Opt("--dtype", help="Run the model in fp32, fp16 or bf16 (default: as loaded).")
]
CaptureFormatOpt = Annotated[
    str,
    Opt("--format", help="Formats of the summary reports written beside the file: csv,md,json,"
        "html or none."),
]  # fmt: skip
