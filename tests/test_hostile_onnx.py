"""Untrusted ONNX files (issue 19): external data stays in the model's folder and is read
only within its declared range, and its values are never echoed; attributes that
contradict the operator or the weights are errors; sizes are bounded before any work."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx", reason="the ONNX tests need the onnx extra")
from onnx import TensorProto, helper  # noqa: E402, F401
from typer.testing import CliRunner  # noqa: E402

from macscalc.cli import app  # noqa: E402
from macscalc.core.errors import MacscalcError  # noqa: E402
from tests.onnx_build import G  # noqa: E402
from tests.test_fuzz_surfaces import fuzz, one_error  # noqa: E402

runner = CliRunner()


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


SECRET = b"API_KEY=hunter2-very-secret-token-0123456789abcdef" * 8  # 400 bytes, a .env


def onnx_error(path: Path | str) -> str:
    """The one error line of ``count`` on a model (exit 2, nothing on stdout)."""
    start = time.perf_counter()
    result = runner.invoke(app, ["count", str(Path(path).relative_to(Path.cwd()))])
    assert time.perf_counter() - start < 5, path
    assert isinstance(result.exception, SystemExit), result.exception
    assert (result.exit_code, result.stdout) == (2, ""), result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    return result.stderr.removeprefix("error: ").rstrip("\n")


def external_shape(here: Path, location: str, numel: int = 40, **info: str) -> Path:
    """A conv, then a Reshape whose int64 target shape is external data at ``location``."""
    g = G()
    x = g.conv("x", 3, 8, 3, 1)
    shape = TensorProto(name="target", data_type=TensorProto.INT64, dims=[numel])
    shape.data_location = TensorProto.EXTERNAL
    for k, v in {"location": location, **info}.items():
        shape.external_data.add(key=k, value=v)
    g.inits.append(shape)
    x = g.node("Reshape", [x, "target"])
    path = here / "m.onnx"
    onnx.save_model(g.model(x), str(path))
    return path


def test_a_shape_read_from_external_data_is_never_echoed(here):
    Path(".env").write_bytes(SECRET[:320])  # 40 int64s, as the attack
    message = onnx_error(external_shape(here, ".env"))
    assert message == ("m.onnx: node 'reshape3' (Reshape): cannot reshape 1×8×8×8 to values "
                       "from external data")
    assert "hunter2" not in message and not any(ch.isdigit() for ch in message[60:])


@pytest.mark.parametrize(("location", "info", "message"), ids=[
    "parent", "link", "absolute", "long", "fifo", "length", "offset", "short"], argvalues=[
    ("../outside.bin", {}, "external data '../outside.bin' is outside the model's folder "
                           "(links followed)"),
    ("link.bin", {}, "external data 'link.bin' is outside the model's folder (links followed)"),
    ("/etc/passwd", {}, "external data '/etc/passwd': not a file beside the model"),
    ("x" * 5000, {}, "external data 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…': cannot "
                     "read it (File name too long)"),
    ("fifo", {}, "external data 'fifo': not a regular file"),
    ("big.bin", {"length": "16"}, "external data 'big.bin': declares 16 bytes where its dims "
                                  "need 320"),
    ("big.bin", {"offset": "٣"}, "external data 'big.bin': its offset must be a whole number "
                                 "of bytes"),
    ("small.bin", {}, "external data 'small.bin': the file is shorter than the range it "
                      "declares"),
])
def test_external_data_stays_inside_and_within_its_range(here, location, info, message):
    (here / "sub").mkdir()
    model = external_shape(here / "sub", location, **info)
    (here / "outside.bin").write_bytes(SECRET)
    Path("sub/link.bin").symlink_to(here / "outside.bin")
    os.mkfifo("sub/fifo")
    Path("sub/small.bin").write_bytes(b"\0" * 319)
    with open("sub/big.bin", "wb") as f:  # 4 GiB, sparse: only the declared 320 bytes are read
        f.truncate(4 << 30)
    where = "tensor 'target': " if not message.startswith("node") else ""
    assert onnx_error(model) == f"sub/m.onnx: {where}{message}"


def test_external_data_of_the_right_length_is_read(here):
    Path("shape.bin").write_bytes(b"".join(v.to_bytes(8, "little", signed=True)
                                           for v in (1, -1)))
    model = external_shape(here, "shape.bin", numel=2, length="16")
    result = runner.invoke(app, ["count", str(model), "-f", "json"])
    assert result.exit_code == 0, result.output
    # 3·3·3·8·8·8 = 13,824 MACs (the conv; the reshape to 1×512 is free)
    assert '"macs": 13824' in result.stdout


def conv_model(here: Path, weight: tuple[int, int, int, int] = (8, 3, 3, 3), **attrs) -> Path:
    g = G()
    x = g.node("Conv", ["x", g.init(weight)], name="c", **attrs)
    return g.save(here / "m.onnx", x)


@pytest.mark.parametrize(("attrs", "message"), ids=["kernel", "dilation", "stride", "auto_pad",
                                                    "pads", "group"], argvalues=[
    ({"kernel_shape": [7, 7]}, "kernel_shape [7, 7] contradicts its weight's 3×3 kernel"),
    ({"dilations": [0, 0]}, "dilations must be two positive integers, got [0, 0]"),
    ({"strides": [1, -2]}, "strides must be two positive integers, got [1, -2]"),
    ({"auto_pad": "BOGUS"}, "auto_pad must be one of NOTSET, SAME_UPPER, SAME_LOWER, VALID, "
                            "got 'BOGUS'"),
    ({"pads": [1, 1, -1, 1]}, "pads must be non-negative integers, got [1, 1, -1, 1]"),
    ({"group": 0}, "weight 8×3×3×3 with group 0 does not fit 3 input channels"),
])
def test_conv_attributes_that_contradict_are_errors(here, attrs, message):
    # each of these was counted before (issue 19: wrong successes)
    assert onnx_error(conv_model(here, **attrs)) == f"m.onnx: node 'c' (Conv): {message}"


def test_pool_attributes_are_checked(here):
    g = G()
    x = g.node("MaxPool", ["x"], name="p", kernel_shape=[2, 0])
    assert onnx_error(g.save(here / "m.onnx", x)) == (
        "m.onnx: node 'p' (MaxPool): kernel_shape must be two positive integers, got [2, 0]")


def test_sizes_past_the_limits_are_refused_before_work(here):
    # pads of 2^40 (import -o wrote a spec that count then refused)
    message = onnx_error(conv_model(here, pads=[2**40] * 4))
    assert message == ("m.onnx: node 'c' (Conv): padding [1099511627776, 1099511627776] of "
                       "conv2d is past macscalc's limits ('same', 'valid', 'torch', a non-negative "
                       "integer up to 1,024 or a list [h, w] of two)")
    g = G(("N", 3, 2**62, 8))
    assert onnx_error(g.save(here / "m.onnx", g.node("Relu", ["x"]))) == (
        "m.onnx: tensor 'x' has more than 1e18 elements")
    g = G(("N", 3, 2**20, 8))
    assert onnx_error(g.save(here / "m.onnx", g.node("Relu", ["x"]))) == (
        "m.onnx: input 'x' is ?×3×1048576×8, past macscalc's limits (16,384 pixels a side, "
        "1,000,000 channels)")
    # 50,000 dims of 2: their product took big-number arithmetic before the rank was checked
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2] * 50_000)
    g = G()
    g.inits.append(t)
    assert onnx_error(g.save(here / "m.onnx", g.node("Relu", ["x"]))) == (
        "m.onnx: initializer 'w' has 50,000 dims; macscalc reads tensors of at most 8")


@pytest.mark.parametrize("op", ["ConstantOfShape", "Expand", "Mul", "Range"])
def test_constant_bombs_are_sized_before_they_are_made(here, op):
    g = G()
    big = g.ints([1 << 20, 1 << 20])  # 2^40 elements
    if op == "ConstantOfShape":
        c = g.node(op, [big])
    elif op == "Expand":
        c = g.node(op, [g.ints([1]), big])
    elif op == "Mul":
        c = g.node(op, [g.init((1 << 11, 1), dtype="int64"), g.init((1, 1 << 11), dtype="int64")])
    else:
        c = g.node(op, [g.init((), 0, "int64"), g.init((), 1 << 40, "int64"),
                        g.init((), 1, "int64")])
    x = g.node("Reshape", ["x", g.node("Shape", ["x"])])
    g.node("Add", [x, c])
    message = onnx_error(g.save(here / "m.onnx", x))
    assert message.endswith(f"({op}): constant arithmetic would make a tensor over 1,048,576 "
                            "elements")


def test_the_layer_limit_applies_to_onnx(here, monkeypatch):
    monkeypatch.setattr("macscalc.models.onnx.reader.MAX_LAYERS", 3)
    g = G()
    x = "x"
    for _ in range(4):
        x = g.node("Relu", [x])
    assert onnx_error(g.save(here / "m.onnx", x)) == "m.onnx: more than 3 layers in one network"


# Property: ONNX graphs from random ops and attributes (MACSCALC_FUZZ_EXAMPLES: the long run).

INTS = st.lists(st.integers(-3, 9), min_size=0, max_size=5)
BIG = st.sampled_from([0, 1, 2, 7, 2**20, 2**40, -1])


def _op(g: G, x: str, choice: int, a: list[int], b: list[int], big: int) -> str:
    """One node on ``x`` (an N×8×8×8 tensor, if the graph so far kept it) with attributes
    and constant inputs drawn at random."""
    kernel = [max(v, 0) for v in a[:2]] or [3, 3]
    if choice == 0:
        return g.node("Conv", [x, g.init((8, 8, *([v % 5 + 1 for v in b[:2]] or [3, 3])))],
                      kernel_shape=kernel + [3] * (2 - len(kernel)), pads=b[:4] or [0] * 4,
                      strides=[v for v in a[2:4]] or [1, 1], dilations=[big % 3] * 2,
                      group=a[0] if a else 1)
    if choice == 1:
        return g.node("MaxPool", [x], kernel_shape=kernel, strides=[v for v in b[:2]] or [1, 1],
                      auto_pad=["NOTSET", "SAME_UPPER", "VALID", "BOGUS"][big % 4])
    if choice == 2:
        return g.node("Reshape", [x, g.ints(a or [1, -1])])
    if choice == 3:
        return g.node("Add", [x, g.node("ConstantOfShape", [g.ints([big, *b[:2]])])])
    if choice == 4:
        return g.node("Mul", [x, g.node("Expand", [g.ints([1]), g.ints([1, 8, big, 1])])])
    if choice == 5:
        return g.node("Clip", [x, g.scalar(float(a[0]) if a else 0.0),
                               g.scalar(float(b[0]) if b else 6.0)])
    if choice == 6:
        return g.node("Pad", [x, g.ints((a + b + [0] * 8)[:8])])
    if choice == 7:
        return g.node("Split", [x, g.ints(a or [4, 4])], outputs=2, axis=1)[0]
    return g.node("Relu", [x])


@fuzz(40)
@given(ops=st.lists(st.tuples(st.integers(0, 8), INTS, INTS, BIG), min_size=1, max_size=5),
       shape=st.sampled_from([("N", 8, 8, 8), ("N", 8, 16384, 8), ("N", 8, 2**40, 1),
                              ("N", 8, 0, 8)]))
def test_random_onnx_graphs(ops: list[tuple[int, list[int], list[int], int]],
                            shape: tuple[Any, ...]) -> None:
    from macscalc.models.onnx.reader import read_network

    g = G(shape)
    x = "x"
    for choice, a, b, big in ops:
        x = _op(g, x, choice, a, b, big)
    with tempfile.TemporaryDirectory() as tmp:
        path = g.save(Path(tmp) / "m.onnx", x)
        try:
            network = read_network(str(path), allow_unknown=True)
        except MacscalcError as e:
            one_error(e)
            return
    for n in network.nodes:  # every layer one a spec could hold
        assert min(n.out) > 0 and max(n.out.h, n.out.w) <= 16_384 and n.out.c <= 10**6
    if all(n.layer.kind != "unknown" for n in network.nodes):  # import -o: count reads it
        from macscalc.lang.graph import build
        from macscalc.lang.spec import parse
        from macscalc.lang.spec_writer import spec_text

        assert build(parse(spec_text(network), "m.yaml")).nodes


def test_import_finds_repeats_in_linear_time():
    """A 20,000-layer import spent minutes looking for repeated sequences of any length."""
    from types import SimpleNamespace

    from macscalc.lang.spec_writer import repeats

    def rows(c) -> list:
        return [SimpleNamespace(name=f"n{i}", kind="conv", args={"c": c(i)},
                                inputs=(f"n{i - 1}",)) for i in range(20_000)]

    start = time.perf_counter()
    assert repeats(rows(lambda i: i)) == []  # all distinct
    assert repeats(rows(lambda i: 8)) == [(1, 1, 19_999)]  # the first reads the input
    assert repeats(rows(lambda i: i % 3)) == [(1, 3, 6_666)]
    assert time.perf_counter() - start < 10


def test_a_constant_node_never_reads_external_data(here):
    """A Constant's value tensor may say it lives in external data; onnx would read it
    relative to the current folder, unchecked."""
    Path(".env").write_bytes(SECRET[:16])
    value = TensorProto(name="v", data_type=TensorProto.INT64, dims=[2])
    value.data_location = TensorProto.EXTERNAL
    value.external_data.add(key="location", value=".env")
    g = G()
    x = g.conv("x", 3, 8, 3, 1)
    g.nodes.append(helper.make_node("Constant", [], ["shape"], name="k", value=value))
    x = g.node("Reshape", [x, "shape"])
    assert onnx_error(g.save(here / "m.onnx", x)) == (
        "m.onnx: node 'k' (Constant): cannot evaluate on constants: ValueError")
