"""macscalc: MACs, parameters and activation memory of efficient CNNs from YAML specs.

Library use::

    from macscalc import load_spec, build, count, Convention, PARAM_CONVENTIONS
    report = count(build(load_spec("mobilenet_v2")), Convention(PARAM_CONVENTIONS["torch"]))
    report.macs, report.params

The names are loaded on first use, so that ``macscalc --help`` (whose modules import this
package) does not load the spec language and the counter.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see
    from macscalc.counting import PARAM_CONVENTIONS as PARAM_CONVENTIONS
    from macscalc.counting import Convention as Convention
    from macscalc.counting import Report as Report
    from macscalc.counting import count as count
    from macscalc.graph import Network as Network
    from macscalc.graph import build as build
    from macscalc.spec import Spec as Spec
    from macscalc.spec import load_spec as load_spec
    from macscalc.spec import parse as parse

__version__ = "0.1.0"
_HOMES = {
    "PARAM_CONVENTIONS": "macscalc.counting",
    "Convention": "macscalc.counting",
    "Report": "macscalc.counting",
    "count": "macscalc.counting",
    "Network": "macscalc.graph",
    "build": "macscalc.graph",
    "Spec": "macscalc.spec",
    "load_spec": "macscalc.spec",
    "parse": "macscalc.spec",
}
__all__ = [*_HOMES, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'macscalc' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
