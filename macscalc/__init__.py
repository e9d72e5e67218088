"""macscalc: MACs, parameters and activation memory of efficient CNNs from YAML specs.

Library use::

    from macscalc import load_spec, build, count, Convention, PARAM_CONVENTIONS
    report = count(build(load_spec("mobilenet_v2")), Convention(PARAM_CONVENTIONS["torch"]))
    report.macs, report.params
"""

from macscalc.counting import PARAM_CONVENTIONS, Convention, Report, count
from macscalc.graph import Network, build
from macscalc.spec import Spec, load_spec, parse

__version__ = "0.1.0"
__all__ = [
    "PARAM_CONVENTIONS",
    "Convention",
    "Network",
    "Report",
    "Spec",
    "build",
    "count",
    "load_spec",
    "parse",
    "__version__",
]
