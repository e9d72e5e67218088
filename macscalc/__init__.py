"""macscalc: MACs, parameters and activation memory of efficient CNNs from YAML specs.

Library use::

    from macscalc import load_spec, build, count, Convention, PARAM_CONVENTIONS
    report = count(build(load_spec("mobilenet_v2")), Convention(PARAM_CONVENTIONS["torch"]))
    report.macs, report.params
    grid = sweep("mobilenet_v2", ["0.5", "0.75", "1.0"], range(96, 225, 32))
    grid.macs  # int64 array, α × resolution (numpy is loaded by sweep only)

The names are loaded on first use, so that ``macscalc --help`` (whose modules import this
package) does not load the spec language and the counter.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see
    from macscalc.analysis.counting import PARAM_CONVENTIONS as PARAM_CONVENTIONS
    from macscalc.analysis.counting import Convention as Convention
    from macscalc.analysis.counting import Report as Report
    from macscalc.analysis.counting import count as count
    from macscalc.analysis.sweeps import sweep as sweep
    from macscalc.lang.graph import Network as Network
    from macscalc.lang.graph import build as build
    from macscalc.lang.spec import Spec as Spec
    from macscalc.lang.spec import load_spec as load_spec
    from macscalc.lang.spec import parse as parse

__version__ = "0.1.0"
_HOMES = {
    "PARAM_CONVENTIONS": "macscalc.analysis.counting",
    "Convention": "macscalc.analysis.counting",
    "Report": "macscalc.analysis.counting",
    "count": "macscalc.analysis.counting",
    "Network": "macscalc.lang.graph",
    "build": "macscalc.lang.graph",
    "Spec": "macscalc.lang.spec",
    "load_spec": "macscalc.lang.spec",
    "parse": "macscalc.lang.spec",
    "sweep": "macscalc.analysis.sweeps",  # imports numpy
}
__all__ = [*_HOMES, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'macscalc' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
