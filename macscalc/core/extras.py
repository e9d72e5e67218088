"""Optional dependencies: imported only by the commands that need them.

The core install stays light (typer, rich, pyyaml, numpy imported lazily); ONNX export
and latency measurement need the ``onnx`` extra. A missing extra is a user mistake with
the exact command that fixes it, never an ImportError traceback.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from macscalc.core.errors import MacscalcError

# module → the extra that installs it
EXTRAS = {"onnx": "onnx", "onnxruntime": "onnx", "flatbuffers": "tflite",
          "ai_edge_litert.interpreter": "tflite"}


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` or say how to install it (``what`` names the feature needing it)."""
    try:
        return import_module(module)
    except ImportError:
        extra = EXTRAS[module]
        raise MacscalcError(f"{what} needs the {module} package: pip install "
                            f"'macscalc[{extra}]'") from None
