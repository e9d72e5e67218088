"""Model files read in place of a spec: the one place that knows which formats there are.

Every command that takes a SPEC (``count``, ``check`` and ``check --against``, ``compare``,
``memory``, ``explain``, ``import``) asks :func:`model_format` whether the argument names
a model file, and :func:`read_model` reads it onto macscalc's primitives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from macscalc.core.errors import MacscalcError
from macscalc.models.onnx.file import short

if TYPE_CHECKING:
    from macscalc.lang.graph import Network

FORMATS = {".onnx": "ONNX", ".tflite": "TFLite"}
FORMATS_A = {"ONNX": "an ONNX", "TFLite": "a TFLite", None: "a model"}


def model_format(ref: str) -> str | None:
    """``ONNX`` or ``TFLite`` when ``ref`` names such a file (by its suffix), else None."""
    return next((name for suffix, name in FORMATS.items() if ref.lower().endswith(suffix)),
                None)


def refuse_transforms(ref: str, **given: Any) -> None:
    """α, ρ and classes are transforms of a spec; a file's widths and size are as exported."""
    named = [f"--{k.replace('_', '-')}" for k, v in given.items() if v is not None]
    if named:
        fmt = model_format(ref)
        raise MacscalcError(f"{' and '.join(named)} cannot apply to {FORMATS_A[fmt]} "
                            f"file: its widths and classes are as exported. Write a spec with "
                            f"'macscalc import {short(ref, 64)} -o spec.yaml' and scale that",
                            ref)


def read_model(ref: str, allow_unknown: bool = False, res: int | None = None,
               **transforms: Any) -> Network:
    """The network in the model file ``ref``; ``res`` sizes an input whose height and width
    are symbolic in the file; any spec transform given (``alpha``, ``classes``, ...) is
    refused."""
    fmt = model_format(ref)
    refuse_transforms(ref, **transforms)
    if fmt == "TFLite":
        from macscalc.models.tflite.reader import read_network as read_tflite

        return read_tflite(ref, allow_unknown, res)
    from macscalc.models.onnx.reader import read_network as read_onnx

    return read_onnx(ref, allow_unknown, res)
