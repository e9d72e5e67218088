"""The ONNX protobuf decoder (macscalc/models/onnx/proto.py): the same graph as
``onnx.load`` on the suite's ONNX files, tensor values as ``numpy_helper.to_array`` reads
them, large values never read, and hostile bytes only ever a located MacscalcError.
onnx is the oracle here only; macscalc reads ONNX without it."""

from __future__ import annotations

import tempfile
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx", reason="the decoder is checked against onnx.load")
import numpy as np  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from macscalc import build, load_spec  # noqa: E402
from macscalc.core.errors import MacscalcError  # noqa: E402
from macscalc.models.onnx import proto  # noqa: E402
from macscalc.models.onnx.export import export  # noqa: E402
from macscalc.models.onnx.file import array, opened  # noqa: E402
from macscalc.models.onnx.proto import varints  # noqa: E402
from macscalc.models.onnx.reader import read_network  # noqa: E402
from tests.onnx_build import G  # noqa: E402
from tests.test_fuzz_surfaces import fuzz, one_error  # noqa: E402
from tests.test_onnx_attention import FORMS, Exporter  # noqa: E402

SMALL = 4096


def same_tensor(ours: proto.TensorProto, theirs: Any) -> None:
    assert (ours.name, ours.dims, ours.data_type, ours.data_location, ours.segment) == (
        theirs.name, list(theirs.dims), theirs.data_type, theirs.data_location,
        theirs.HasField("segment"))
    assert [(e.key, e.value) for e in ours.external_data] == [
        (e.key, e.value) for e in theirs.external_data]
    if theirs.data_location != TensorProto.EXTERNAL and np.prod(theirs.dims) <= SMALL:
        try:
            want = numpy_helper.to_array(theirs)
        except ValueError:  # values that do not fit the dims
            with pytest.raises(ValueError):
                array(ours)
            return
        got = array(ours)
        assert got.shape == want.shape and got.tobytes() == want.astype(got.dtype).tobytes()


def same_value_info(ours: proto.ValueInfoProto, theirs: Any) -> None:
    assert ours.name == theirs.name
    t = ours.type.tensor_type if ours.type else None
    if not theirs.type.HasField("tensor_type"):
        assert t is None
        return
    assert t.elem_type == theirs.type.tensor_type.elem_type
    shape = theirs.type.tensor_type.shape if theirs.type.tensor_type.HasField("shape") else None
    assert (t.shape is None) == (shape is None)
    if shape is not None:
        assert [d.dim_value for d in t.shape.dim] == [
            d.dim_value if d.HasField("dim_value") else None for d in shape.dim]


def same_model(ours: proto.ModelProto, theirs: Any) -> None:
    """Every field the decoder reads equals onnx's."""
    assert (ours.ir_version, ours.producer_name, ours.producer_version) == (
        theirs.ir_version, theirs.producer_name, theirs.producer_version)
    assert [(o.domain, o.version) for o in ours.opset_import] == [
        (o.domain, o.version) for o in theirs.opset_import]
    g, h = ours.graph, theirs.graph
    assert g.name == h.name and len(g.node) == len(h.node)
    for n, m in zip(g.node, h.node, strict=True):
        assert (n.name, n.op_type, n.domain, n.input, n.output) == (
            m.name, m.op_type, m.domain, list(m.input), list(m.output))
        assert len(n.attribute) == len(m.attribute)
        for a, b in zip(n.attribute, m.attribute, strict=True):
            assert (a.name, a.type, a.i, a.s, a.ints, a.strings) == (
                b.name, b.type, b.i, b.s, list(b.ints), list(b.strings))
            assert np.array_equal(np.float32([a.f, *a.floats]), np.float32([b.f, *b.floats]),
                                  equal_nan=True)
            assert (a.t is None) == (not b.HasField("t"))
            if a.t is not None:
                same_tensor(a.t, b.t)
    for ts, us in ((g.initializer, h.initializer),):
        assert len(ts) == len(us)
        for t, u in zip(ts, us, strict=True):
            same_tensor(t, u)
    for ours_vi, theirs_vi in ((g.input, h.input), (g.output, h.output),
                               (g.value_info, h.value_info)):
        assert len(ours_vi) == len(theirs_vi)
        for a, b in zip(ours_vi, theirs_vi, strict=True):
            same_value_info(a, b)


def kitchen_sink() -> Any:
    """A model with every field kind the decoder reads, each stored each way onnx allows."""
    g = G(("N", 3, "H", 8))
    x = g.conv("x", 3, 4, 3)
    typed = [
        helper.make_tensor("f32", TensorProto.FLOAT, [2], [1.5, -2.0]),
        helper.make_tensor("f16", TensorProto.FLOAT16, [2], np.float16([0.5, -3.0])),
        helper.make_tensor("bf16", TensorProto.BFLOAT16, [2], [1.0, -0.5]),
        helper.make_tensor("i8", TensorProto.INT8, [3], [-128, 0, 127]),
        helper.make_tensor("u16", TensorProto.UINT16, [2], [0, 65535]),
        helper.make_tensor("i32", TensorProto.INT32, [2], [-(2**31), 2**31 - 1]),
        helper.make_tensor("i64", TensorProto.INT64, [2], [-(2**63), 2**63 - 1]),
        helper.make_tensor("u32", TensorProto.UINT32, [1], [2**32 - 1]),
        helper.make_tensor("u64", TensorProto.UINT64, [1], [2**64 - 1]),
        helper.make_tensor("f64", TensorProto.DOUBLE, [2], [1e300, -0.25]),
        helper.make_tensor("b", TensorProto.BOOL, [2, 1], [True, False]),
        helper.make_tensor("raw16", TensorProto.BFLOAT16, [1], b"\x80\x3f", raw=True),
        helper.make_tensor("empty", TensorProto.FLOAT, [0, 3], []),
    ]
    ext = TensorProto(name="ext", data_type=TensorProto.INT64, dims=[2])
    ext.data_location = TensorProto.EXTERNAL
    for k, v in {"location": "d.bin", "offset": "0", "length": "16"}.items():
        ext.external_data.add(key=k, value=v)
    g.inits += [*typed, ext]
    g.nodes.append(helper.make_node("Constant", [], ["k"], name="c", value=typed[6]))
    y = g.node("Relu", [x], name="ünïcode", alpha=0.5, beta=-3, mode="x\xff", floats=[1.0, 2.5],
               ints=[-1, 2**40], strings=[b"a", b"\x00\xff"], domain="com.example")
    seq = helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, [1, 2])
    g.value_info += [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", 4, None, 8]),
                     seq, helper.make_value_info("untyped", onnx.TypeProto())]
    m = g.model(y)
    m.producer_name, m.producer_version = "tests", "1.0"
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    return m


@cache
def suite_models() -> dict[str, Any]:
    """The suite's kinds of ONNX file: hand-built attention graphs in each exporter's form,
    exports of built-in specs, and the kitchen sink."""
    models = {"kitchen sink": kitchen_sink()}
    for form, (opset, dynamo, qkv, einsum) in FORMS.items():
        g = G((1, 3, 32, 32), opset)
        models[form] = g.model(Exporter(g, dynamo, qkv, einsum).network())
    for spec, alpha in SPECS.items():
        models[spec] = export(build(load_spec(spec), Fraction(alpha), (32, 32)))
    return models


SPECS = {"mobilenet_v2": "1/4", "mobilenet_v3_small": "1/4", "micronet_m0": "1"}


@pytest.mark.parametrize("name", ["kitchen sink", *FORMS, *SPECS])
def test_the_decoder_reads_what_onnx_reads(name):
    theirs = suite_models()[name]
    same_model(proto.decode(theirs.SerializeToString(), "m.onnx"), theirs)


def test_a_file_is_decoded_as_its_bytes_are(tmp_path):
    """From the file (read a block at a time), as from bytes; unpacked repeated fields too."""
    m = kitchen_sink()
    m.graph.initializer[0].dims[:] = [8, 3, 3, 3]  # 108 values for 216: unreadable
    path = tmp_path / "m.onnx"
    onnx.save_model(m, str(path))
    with opened(str(path)) as ours:
        same_model(ours, m)
    t = TensorProto(name="unpacked", data_type=TensorProto.INT64, dims=[3])
    # int64_data as three unpacked fields (field 7, wire 0), as an old writer may store it
    unpacked = t.SerializeToString() + b"".join(b"\x38" + bytes([v]) for v in (1, 2, 3))
    ours = proto._Decoder(unpacked, "t").message(proto.TensorProto, 0, len(unpacked))
    assert array(ours).tolist() == [1, 2, 3]


class Counting(proto.Source):
    """A file source that counts the bytes it reads."""

    read = 0

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            Counting.read += key.stop - key.start
        elif key // self.BLOCK != self.block:
            Counting.read += self.BLOCK
        return super().__getitem__(key)


def test_large_values_are_never_read(tmp_path, monkeypatch):
    """Two 4 MB weights and a small Reshape target: the count reads some kilobytes."""
    g = G()
    x = g.node("Relu", [g.conv("x", 3, 1024, 3)])
    x = g.node("Conv", [x, g.init((1024, 1024, 1, 1))], kernel_shape=[1, 1])
    x = g.node("Reshape", [x, g.ints([1, -1])])
    path = g.save(tmp_path / "m.onnx", x)
    assert path.stat().st_size > 4_000_000
    monkeypatch.setattr("macscalc.models.onnx.file.Source", Counting)
    net = read_network(str(path))
    assert net.nodes[-1].out.c == 1024 * 8 * 8  # the target's values were read: 1×65536
    assert Counting.read < 16_384


@pytest.mark.parametrize(("data", "message"), ids=[
    "varint", "wire", "group", "past", "twice", "utf8", "value wire", "field 0"], argvalues=[
    (b"\x08" + b"\xff" * 10 + b"\x01", "truncated or malformed varint at byte 1"),
    (b"\x3d\0\0\0\0", "field 7 of ModelProto has wire type 5 at byte 0"),
    (b"\x0b", "unsupported wire type 3 at byte 1"),
    (b"\x3a\x05\x0a", "a field runs past the end (truncated file?) at byte 7"),
    (b"\x3a\x00\x3a\x00", "field 7 of ModelProto appears twice at byte 2"),
    (b"\x3a\x03\x12\x01\xff", "a name that is not UTF-8 text at byte 2"),
    (b"\x3a\x04\x2a\x02\x48\x00", "value field 9 of a tensor has wire type 0 at byte 4"),
    (b"\x3a\x02\x02\x00", "field number 0 at byte 3"),
])
def test_malformed_bytes_are_located_errors(tmp_path, data, message):
    with pytest.raises(MacscalcError) as e:
        proto.decode(data, "m.onnx")
    assert str(e.value) == f"m.onnx: not a readable ONNX model: {message}"
    path = tmp_path / "m.onnx"  # from the file, a small message is read whole: same byte
    path.write_bytes(data)
    with pytest.raises(MacscalcError) as e, opened(str(path)):
        pass
    assert str(e.value) == f"{path}: not a readable ONNX model: {message}"


@pytest.mark.parametrize("packed", [False, True])
def test_the_item_budget_bounds_the_work(monkeypatch, packed):
    monkeypatch.setattr(proto, "MAX_ONNX_ITEMS", 20)
    if packed:  # one attribute of 10,000 ints: decoding stops after the 21st
        g = G()
        data = g.model(g.node("Relu", ["x"], ints=list(range(10_000)))).SerializeToString()
        monkeypatch.setattr(proto, "varints", lambda *a: pytest.fail(str(a)) if a[-1] > 21
                            else varints(*a))
    else:
        data = kitchen_sink().SerializeToString()
    with pytest.raises(MacscalcError, match="over 20 nodes, tensors, attributes, dims and "
                                            "other items, more than macscalc reads"):
        proto.decode(data, "m.onnx")


def test_oneofs_and_unknown_enums_read_as_protobuf_reads_them():
    dim = b"\x08\x05\x12\x01N"  # dim_value 5, then dim_param 'N': symbolic
    ours = proto._Decoder(dim, "t").message(proto.Dimension, 0, len(dim))
    assert ours.dim_value is None
    attr = b"\x0a\x01a\xa0\x01\x63"  # type 99, no such AttributeType: UNDEFINED
    assert proto._Decoder(attr, "t").message(proto.AttributeProto, 0, len(attr)).type == 0
    assert onnx.AttributeProto.FromString(attr).type == 0


VALID = [kitchen_sink().SerializeToString()]


@fuzz(200)
@given(data=st.one_of(
    st.binary(max_size=300),
    st.tuples(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 10**6),
                                                         st.integers(0, 255)), max_size=8),
              st.integers(0, 10**6)).map(lambda t: _mutated(*t))))
def test_random_and_mutated_bytes_are_never_a_crash(data: bytes) -> None:
    try:
        proto.decode(data, "m.onnx")
    except MacscalcError as e:
        one_error(e)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        path.write_bytes(data)
        try:
            read_network(str(path), allow_unknown=True)
        except MacscalcError as e:
            one_error(e)


def _mutated(data: bytes, flips: list[tuple[int, int]], cut: int) -> bytes:
    """``data`` with some bytes replaced and cut short."""
    b = bytearray(data)
    for at, v in flips:
        b[at % len(b)] = v
    return bytes(b[: len(b) - cut % 64])


def test_counting_a_file_imports_neither_onnx_nor_numpy(tmp_path):
    """What made a count take 1 s (issue 22, item 5): ``import onnx`` (0.8 s, ml_dtypes),
    then numpy for dims arithmetic. A file without shape arithmetic needs neither."""
    import subprocess
    import sys

    g = G()
    x = g.node("Relu", [g.bn(g.conv("x", 3, 8, 3), 8)])
    path = g.save(tmp_path / "m.onnx", g.node("GlobalAveragePool", [x]))
    code = ("import sys; from macscalc.cli import main; sys.argv = ['macscalc', 'count', "
            f"{str(path)!r}]\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('onnx', 'google.protobuf', 'ml_dtypes', 'numpy') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, check=True)
    assert "MACs: 13,824" in done.stdout  # 3·3·3·8 × 8·8, the conv
    assert done.stdout.splitlines()[-1] == "[]"
