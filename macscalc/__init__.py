"""macscalc: MACs, parameters and activation memory of efficient CNNs from YAML specs.

Library use::

    from macscalc import load_spec, build, count, Convention, PARAM_CONVENTIONS
    report = count(build(load_spec("mobilenet_v2")), Convention(PARAM_CONVENTIONS["torch"]))
    report.macs, report.params
    grid = sweep("mobilenet_v2", ["0.5", "0.75", "1.0"], range(96, 225, 32))
    grid.macs  # int64 array, α × resolution (numpy is imported by sweep only)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from macscalc.counting import PARAM_CONVENTIONS, Convention, Report, count
from macscalc.graph import Network, build
from macscalc.spec import Spec, load_spec, parse

if TYPE_CHECKING:
    from macscalc.sweeps import Sweep

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
    "sweep",
    "__version__",
]


def sweep(spec: Spec | str, alphas: Iterable[Any], resolutions: Iterable[int],
          **options: Any) -> Sweep:
    """MACs, params and peak memory over α × resolution as numpy arrays; see
    :func:`macscalc.sweeps.sweep` (here so that ``import macscalc`` does not load numpy)."""
    from macscalc.sweeps import sweep as run

    return run(spec, alphas, resolutions, **options)
