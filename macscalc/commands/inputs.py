"""What the options every command shares name: the network (a spec under --alpha, --res,
--classes, --depth, --output-stride, or a model file), the counting convention, the device
profile, and a report with its latency estimate.

Heavy modules load inside the functions, so that importing this costs ``--help`` nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from macscalc.analysis.counting import Convention, Report
    from macscalc.analysis.latency import Profile
    from macscalc.lang.graph import Network


def network(ref: str, alpha: str | None = None, res: int | None = None,
            classes: int | None = None, allow_unknown: bool = False, depth: str | None = None,
            output_stride: int | None = None) -> Network:
    """The spec ``ref`` (a path or a built-in name, or an .onnx or .tflite file) under the
    --alpha, --res, --classes, --depth and --output-stride options (α and depth default to
    the spec's own; a model file refuses them all but --res)."""
    from macscalc.core.units import parse_alpha
    from macscalc.lang.graph import build
    from macscalc.lang.spec import load_spec
    from macscalc.models.files import model_format, read_model

    if model_format(ref):
        return read_model(ref, allow_unknown, res, alpha=alpha, classes=classes, depth=depth,
                          output_stride=output_stride)
    a = parse_alpha(alpha) if alpha is not None else None
    d = parse_alpha(depth, "depth multiplier") if depth is not None else None
    return build(load_spec(ref, d), a, (res, res) if res else None, classes,
                 output_stride=output_stride)


def convention(params: str, ops: str, dtype: str) -> Convention:
    """The counting convention the --params, --count and --dtype options name."""
    from macscalc.analysis.counting import Convention, param_convention, parse_ops
    from macscalc.core.units import dtype_name

    return Convention(param_convention(params), parse_ops(ops), dtype_name(dtype))


def profile(device: str | None) -> Profile | None:
    """The device profile --device names, if any."""
    if device is None:
        return None
    from macscalc.analysis.latency import load_profile

    return load_profile(device)


def with_latency(report: Report, device: Profile | None) -> Report:
    """The report with its estimated latency on ``device``, when one is given, beside the
    published latency of the same model on that device where there is one."""
    if device is not None:
        from macscalc.analysis.latency import estimate
        from macscalc.published.tables import published_latency

        published = (published_latency(report.network, device.published)
                     if device.published else None)
        report.latency = estimate(report, device, published)
    return report


def counted(ref: str, conv: Convention, device: Profile | None = None, **options: object
            ) -> Report:
    """The network ``ref`` names under ``options`` (as :func:`network` takes them), counted
    under ``conv``, with its latency on ``device``."""
    from macscalc.analysis.counting import count

    return with_latency(count(network(ref, **options), conv), device)  # type: ignore[arg-type]
