"""TFLite in and out: hand-assembled ``.tflite`` files (``tflite_build.py``) for each operator
and each quantization scheme, the exporter's files run in LiteRT, and hostile files.
Expected numbers are worked out by hand in the comments (MACs of a conv:
kh·kw·cin/g·cout·hout·wout; of a linear layer: cin·cout per position)."""

from __future__ import annotations

import json
import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from macscalc import PARAM_CONVENTIONS, Convention, build, count, load_spec
from macscalc.cli import app
from macscalc.core.errors import MacscalcError
from macscalc.models.tflite.build import Quant
from macscalc.models.tflite.export import export
from macscalc.models.tflite.reader import read_network
from tests.tflite_build import NONE, RELU, SCHEMES, Net, small

runner = CliRunner()


def counted(path: Path, params: str = "torch", allow_unknown: bool = False):
    return count(read_network(str(path), allow_unknown), Convention(PARAM_CONVENTIONS[params]))


def kinds(path: Path) -> list[str]:
    return [n.layer.kind + (f":{n.layer.fn}" if n.layer.kind == "act" else "")
            for n in read_network(str(path)).nodes]


def error(path: Path, allow_unknown: bool = False) -> str:
    with pytest.raises(MacscalcError) as e:
        read_network(str(path), allow_unknown)
    return e.value.message


def run_litert(path: Path) -> list[tuple[int, ...]]:
    """Run the file once in LiteRT (XNNPACK); the output shapes."""
    litert = pytest.importorskip("ai_edge_litert.interpreter",
                                 reason="running .tflite needs the tflite extra")
    it = litert.Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.ones(d["shape"], np.float32))
    it.invoke()
    return [tuple(int(v) for v in it.get_tensor(o["index"]).shape)
            for o in it.get_output_details()]


# -- the small network in every scheme ----------------------------------------------------

# conv 3·3·3·16 at 4×4 = 6,912 MACs (432 weights); dw 3·3·16 at 4×4 = 2,304 (144);
# FC 16·10 = 160 (160): 9,376 MACs, 736 weights, 16 + 16 + 10 = 42 biases
SMALL_MACS, SMALL_WEIGHTS, SMALL_BIASES = 9376, 736, 42
# bytes as stored: weights 736 × 4, 2 or 1; biases float32 (4) in float files, int32 (4)
# in integer ones
STORED = {"float32": (2944, 168, ["float32"]), "float16": (1472, 168, ["float32"]),
          "dynamic": (736, 168, ["float32"]), "int8": (736, 168, ["int8"]),
          "uint8": (736, 168, ["uint8"])}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_quantization_scheme_counts_the_same_network(tmp_path, scheme):
    p = small(tmp_path / f"{scheme}.tflite", scheme)
    r = counted(p)
    assert (r.macs, r.param_parts.weights, r.param_parts.biases) == \
        (SMALL_MACS, SMALL_WEIGHTS, SMALL_BIASES)
    assert kinds(p) == ["conv2d", "act:relu6", "depthwise", "act:relu", "global_pool",
                        "linear", "act:softmax"]
    stored = r.network.stored
    assert (stored["weight_bytes"], stored["bias_bytes"], stored["activations"]) == \
        STORED[scheme]
    assert run_litert(p) == [(1, 10)]


def test_stored_parts_name_type_and_scales(tmp_path):
    # full int8: conv and dw weights per channel (432 + 144 = 576 values, 1 byte each),
    # their int32 biases per channel (32 × 4 = 128 B); the FC per tensor (160 B, bias 40 B)
    r = counted(small(tmp_path / "q.tflite", "int8"))
    assert r.network.stored["parts"] == [
        {"role": "weights", "dtype": "int8", "scales": "per-channel", "values": 576,
         "bytes": 576},
        {"role": "biases", "dtype": "int32", "scales": "per-channel", "values": 32,
         "bytes": 128},
        {"role": "weights", "dtype": "int8", "scales": "per-tensor", "values": 160,
         "bytes": 160},
        {"role": "biases", "dtype": "int32", "scales": "per-tensor", "values": 10, "bytes": 40}]
    assert "stored: weights 576 × int8 per-channel = 576 B" in r.network.origin
    assert "activations computed in int8" in r.network.origin


def test_count_json_and_convention_line(tmp_path):
    p = small(tmp_path / "m.tflite", "float16")
    out = runner.invoke(app, ["count", str(p), "--format", "json"])
    assert out.exit_code == 0, out.output
    rep = json.loads(out.output)["reports"][0]
    assert rep["totals"]["macs"] == SMALL_MACS
    assert rep["status"] == "complete"
    assert rep["stored"]["parts"][0] == {"role": "weights", "dtype": "float16", "scales": None,
                                         "values": 736, "bytes": 1472}
    assert rep["spec"]["source"] == "TFLite file m.tflite (schema 3, macscalc)"
    text = runner.invoke(app, ["count", str(p)]).output
    assert "subgraph 0 of 1 counted; signatures: 'serving_default' → subgraph 0" in text
    assert "weights 736 × float16 = 1,472 B" in text


# -- single operators ---------------------------------------------------------------------

def test_pad_then_valid_conv_is_tf_same_padding(tmp_path):
    # Keras writes a stride-2 'same' conv of an even input as PAD (0, 1) + VALID:
    # 8×8 → 9×9 → 3×3/2 → 4×4; 3·3·3·8·4·4 = 3,456 MACs, read as one 'same' conv
    n = Net()
    x, _ = n.input((1, 8, 8, 3))
    padded = n.act("pad", (1, 9, 9, 3))
    n.a.op("PAD", [x, n.ints("paddings", [0, 0, 0, 1, 0, 1, 0, 0], (4, 2))], [padded])
    w = n.weight("w", (8, 3, 3, 3))
    y = n.act("conv", (1, 4, 4, 8))
    n.a.op("CONV_2D", [padded, w, n.bias("b", 8, w)], [y],
           ((0, "b", 1), (1, "i", 2), (2, "i", 2), (3, "b", NONE)))
    p = n.save(tmp_path / "pad.tflite", x, y)
    r = counted(p)
    assert r.macs == 3456
    assert r.network.nodes[0].layer.padding == "same"
    assert run_litert(p) == [(1, 4, 4, 8)]


def test_depth_multiplier_transpose_conv_pools_and_concat(tmp_path):
    n = Net()
    x, _ = n.input((1, 8, 8, 4))
    # dw ×2: 3·3·8 per position at 8×8 = 4,608 MACs, 72 weights
    w = n.weight("dw", (1, 3, 3, 8), 3)
    d = n.act("dw", (1, 8, 8, 8))
    n.a.op("DEPTHWISE_CONV_2D", [x, w, n.bias("db", 8, w)], [d],
           ((0, "b", 0), (1, "i", 1), (2, "i", 1), (3, "i", 2), (4, "b", RELU)))
    # max pool 2×2/2 → 4×4×8; average pool 3×3/1 same → 4×4×8
    m = n.act("max", (1, 4, 4, 8))
    n.a.op("MAX_POOL_2D", [d], [m], ((0, "b", 1), (1, "i", 2), (2, "i", 2), (3, "i", 2),
                                     (4, "i", 2)))
    a = n.act("avg", (1, 4, 4, 8))
    n.a.op("AVERAGE_POOL_2D", [m], [a], ((0, "b", 0), (1, "i", 1), (2, "i", 1), (3, "i", 3),
                                         (4, "i", 3)))
    c = n.act("cat", (1, 4, 4, 16))
    n.a.op("CONCATENATION", [m, a], [c], ((0, "i", 3),))
    # transpose conv 2×2/2 SAME 16 → 6: k·k·cout·cin·hin·win = 2·2·6·16·4·4 = 6,144 MACs
    w = n.weight("tw", (6, 2, 2, 16))
    t = n.act("up", (1, 8, 8, 6))
    n.a.op("TRANSPOSE_CONV", [n.ints("shape", [1, 8, 8, 6]), w, c, n.bias("tb", 6, w)], [t],
           ((0, "b", 0), (1, "i", 2), (2, "i", 2)))
    p = n.save(tmp_path / "ops.tflite", x, t)
    r = counted(p, "weights")
    assert r.macs == 4608 + 6144
    assert r.params == 72 + 2 * 2 * 6 * 16
    assert kinds(p) == ["depthwise", "act:relu", "pool", "pool", "concat", "conv_transpose"]
    assert run_litert(p) == [(1, 8, 8, 6)]


def test_swish_se_gate_hard_swish_and_constants(tmp_path):
    # x·LOGISTIC(x) is one swish; MEAN → FC → LOGISTIC → MUL is an SE gate; x·(1/6) and
    # x + 3 with constants are scalar ops (one op per element, no parameters)
    n = Net()
    x, _ = n.input((1, 4, 4, 8))
    sig = n.act("sig", (1, 4, 4, 8))
    n.a.op("LOGISTIC", [x], [sig])
    sw = n.act("swish", (1, 4, 4, 8))
    n.a.op("MUL", [x, sig], [sw], ((0, "b", 0),))
    pooled = n.act("se/pool", (1, 1, 1, 8))
    n.a.op("MEAN", [sw, n.ints("axes", [1, 2])], [pooled], ((0, "B", True),))
    w = n.weight("se/fc", (8, 8))
    fc = n.act("se/fc", (1, 1, 1, 8))
    n.a.op("FULLY_CONNECTED", [pooled, w, -1], [fc], ((0, "b", 0), (1, "b", 0), (2, "B", True)))
    gate = n.act("se/gate", (1, 1, 1, 8))
    n.a.op("LOGISTIC", [fc], [gate])
    scaled = n.act("se/mul", (1, 4, 4, 8))
    n.a.op("MUL", [sw, gate], [scaled], ((0, "b", 0),))
    hs = n.act("hswish", (1, 4, 4, 8))
    n.a.op("HARD_SWISH", [scaled], [hs])
    plus = n.act("plus3", (1, 4, 4, 8))
    n.a.op("ADD", [hs, n.a.tensor("three", (), "float32", struct.pack("<f", 3.0))], [plus],
           ((0, "b", 0),))
    p = n.save(tmp_path / "se.tflite", x, plus)
    assert kinds(p) == ["act:swish", "global_pool", "linear", "act:sigmoid", "mul",
                        "act:hswish", "scalar"]
    r = count(read_network(str(p)), Convention(PARAM_CONVENTIONS["torch"], ("act", "mul",
                                                                              "add")))
    # FC 8·8 = 64 MACs, no bias; swish 5·128, sigmoid 4·8, hswish 5·128 = 1,312 act ops;
    # mul 128 (the gate); add 128 (x + 3)
    assert (r.macs, r.params) == (64, 64)
    assert (r.ops_by_category["act"], r.ops_by_category["mul"], r.ops_by_category["add"]) == \
        (1312, 128, 128)
    assert run_litert(p) == [(1, 4, 4, 8)]


def test_reshape_squeeze_flatten_batch_matmul_and_quantize_are_mapped(tmp_path):
    n = Net()
    x, _ = n.input((1, 2, 2, 4))
    flat = n.act("flat", (1, 16))
    n.a.op("RESHAPE", [x, n.ints("shape", [1, 16])], [flat])
    q = n.a.tensor("q", (1, 16), "int8", quant=Quant((0.05,), (0,)))
    n.a.op("QUANTIZE", [flat], [q])
    f = n.act("f", (1, 16))
    n.a.op("DEQUANTIZE", [q], [f])
    # a matmul by a constant 16×5: 80 MACs
    w = n.a.tensor("w", (16, 5), "float32", np.ones((16, 5), np.float32).tobytes())
    y = n.act("mm", (1, 5))
    n.a.op("BATCH_MATMUL", [f, w], [y])
    p = n.save(tmp_path / "r.tflite", x, y)
    assert kinds(p) == ["flatten", "linear"]
    assert counted(p).macs == 80
    assert run_litert(p) == [(1, 5)]


# -- nothing unknown is zero --------------------------------------------------------------

def _with_unknown(tmp_path: Path) -> Path:
    n = Net()
    x, _ = n.input((1, 4, 4, 8))
    a = n.act("model/floor/Floor", (1, 4, 4, 8))
    n.a.op("FLOOR", [x], [a])
    b = n.act("model/exp/Exp", (1, 4, 4, 8))
    n.a.op("EXP", [a], [b])
    w = n.weight("w", (2, 1, 1, 8))
    y = n.act("model/conv/Conv2D", (1, 4, 4, 2))
    n.a.op("CONV_2D", [b, w, -1], [y], ((0, "b", 0), (1, "i", 1), (2, "i", 1)))
    return n.save(tmp_path / "u.tflite", x, y)


def test_unknown_operators_are_listed_never_zero(tmp_path):
    p = _with_unknown(tmp_path)
    assert error(p) == ("no counting rule for these TFLite operators: FLOOR (1: floor); EXP "
                        "(1: exp). Nothing is counted as zero; --allow-unknown counts them as "
                        "unknown (report status partial)")
    out = runner.invoke(app, ["count", str(p)])
    assert out.exit_code == 2 and "Traceback" not in out.output
    r = counted(p, allow_unknown=True)
    # the conv after them still counts: 1·1·8·2 at 4×4 = 256 MACs
    assert r.macs == 256
    rep = json.loads(runner.invoke(app, ["count", str(p), "--allow-unknown", "--format",
                                         "json"]).output)["reports"][0]
    assert rep["status"] == "partial" and rep["unknown_ops"] == {"FLOOR": ["floor"],
                                                                   "EXP": ["exp"]}


# -- the exporter ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["fp32", "fp16", "int8"])
def test_export_runs_in_litert_and_counts_as_the_spec(tmp_path, dtype):
    net = build(load_spec("mobilenet_v2"), Fraction(1, 2), (96, 96), None)
    p = tmp_path / "v2.tflite"
    p.write_bytes(export(net, 0, dtype))
    assert run_litert(p) == [(1, 1, 1, 1000)]  # the spec's 1×1×1000
    spec = count(net, Convention(PARAM_CONVENTIONS["weights"]))
    file = counted(p, "weights")
    assert (file.macs, file.params) == (spec.macs, spec.params)
    # weights as stored: one byte each in int8, two in fp16, four in fp32 — what
    # count SPEC --dtype T --params weights gives
    per = {"fp32": 4, "fp16": 2, "int8": 1}[dtype]
    assert file.network.stored["weight_bytes"] == spec.params * per


def test_count_spec_dtype_int8_agrees_with_the_int8_file(tmp_path):
    p = tmp_path / "v1.tflite"
    out = runner.invoke(app, ["export", "mobilenet_v1", "--alpha", "0.25", "--res", "128",
                              "--format", "tflite", "--dtype", "int8", "-o", str(p)])
    assert out.exit_code == 0, out.output
    assert out.output.startswith(f"wrote {p}: TFLite, int8, ")
    spec = json.loads(runner.invoke(app, ["count", "mobilenet_v1", "--alpha", "0.25", "--res",
                                          "128", "--dtype", "int8", "--params", "weights",
                                          "--format", "json"]).output)["reports"][0]
    file = json.loads(runner.invoke(app, ["count", str(p), "--params", "weights", "--format",
                                          "json"]).output)["reports"][0]
    assert file["totals"]["macs"] == spec["totals"]["macs"]
    assert file["stored"]["weight_bytes"] == spec["totals"]["weight_bytes"]


def test_file_commands_and_refusals(tmp_path):
    p = small(tmp_path / "m.tflite")
    out = runner.invoke(app, ["count", str(p), "--alpha", "0.5"])
    assert out.exit_code == 2
    assert "--alpha cannot apply to a TFLite file" in out.output
    out = runner.invoke(app, ["count", str(p), "--res", "96"])
    assert out.exit_code == 2
    assert ("--res applies only to a model whose input size is symbolic; this one's is 8×8"
            in out.output)
    spec = tmp_path / "m.yaml"
    assert runner.invoke(app, ["import", str(p), "-o", str(spec)]).exit_code == 0
    assert runner.invoke(app, ["check", str(spec), "--against", str(p)]).exit_code == 0
    assert runner.invoke(app, ["memory", str(p)]).exit_code == 0
    out = runner.invoke(app, ["compare", str(p), str(spec)])
    assert out.exit_code == 0, out.output


# -- hostile files ----------------------------------------------------------------------------

def test_not_a_tflite_file(tmp_path):
    p = tmp_path / "x.tflite"
    p.write_bytes(b"")
    assert error(p) == "not a TFLite model: the file is empty"
    p.write_bytes(b"\x10\x00\x00\x00ONNX" + bytes(16))
    assert error(p) == "not a TFLite model: no 'TFL3' file identifier"
    p.write_bytes(b"\xff\xff\xff\x7fTFL3")
    assert error(p) == ("not a valid TFLite model: an offset points outside the file's 8 "
                        "bytes (byte 2147483647)")


def test_a_list_longer_than_the_file_is_refused(tmp_path):
    data = bytearray(small(tmp_path / "m.tflite").read_bytes())
    # the shape vector of a tensor: find [1, 8, 8, 3] with its length and make it 2^30 long
    at = data.find(struct.pack("<5i", 4, 1, 8, 8, 3))
    data[at:at + 4] = struct.pack("<I", 1 << 30)
    p = tmp_path / "long.tflite"
    p.write_bytes(bytes(data))
    assert error(p) == (f"not a valid TFLite model: a list of 1073741824 entries, more than "
                        f"the 8 allowed (byte {at})")


def test_mutated_files_never_crash(tmp_path):
    """Every byte flip is a count or one located error: never a traceback, never a hang."""
    data = small(tmp_path / "m.tflite", "int8").read_bytes()
    rng = np.random.default_rng(0)
    p = tmp_path / "mut.tflite"
    outcomes = {"counted": 0, "refused": 0}
    for _ in range(300):
        mutated = bytearray(data)
        for i in rng.integers(0, len(data), 4):
            mutated[i] = int(rng.integers(0, 256))
        p.write_bytes(bytes(mutated))
        try:
            read_network(str(p))
            outcomes["counted"] += 1
        except MacscalcError as e:
            assert e.message and "\n" not in e.message
            outcomes["refused"] += 1
    assert outcomes["counted"] > 0 and outcomes["refused"] > 0


def test_fused_activation_code_without_a_rule_is_listed(tmp_path):
    n = Net()
    x, _ = n.input((1, 4, 4, 8))
    w = n.weight("w", (2, 1, 1, 8))
    y = n.act("model/conv/Conv2D", (1, 4, 4, 2))
    n.a.op("CONV_2D", [x, w, -1], [y], ((0, "b", 0), (1, "i", 1), (2, "i", 1), (3, "b", 5)))
    p = n.save(tmp_path / "f.tflite", x, y)
    assert error(p).startswith("no counting rule for these TFLite operators: CONV_2D with "
                               "fused activation 5 (1: conv)")


# -- the TFLite Micro arena -------------------------------------------------------------------

def test_tflm_arena_of_the_small_int8_network(tmp_path):
    """Worked by hand with TFLite Micro's rules (16-byte aligned, largest first, ties in
    reverse tensor order, lowest free offset for the lifetime); tflite-micro's recording
    allocator reports the same 960-byte head for this file (benchmarks/tflm_arena.py)."""
    from macscalc.models.tflite.arena import plan
    from macscalc.models.tflite.model import load

    arena = plan(load(str(small(tmp_path / "q.tflite", "int8"))))
    placed = {b.tensor.name: (b.size, b.first, b.last, b.offset) for b in arena.buffers}
    assert placed == {
        "input": (768, 0, 0, 0),  # 8·8·3 float32, read by QUANTIZE (op 0)
        "model/dw/Relu": (256, 2, 3, 0),  # 4·4·16 int8; of the two 256s the later first
        "model/conv/Relu6": (256, 1, 2, 256),  # alive with the dw out
        "input/q": (192, 0, 1, 768),  # alive with the input (0…768) and the conv out
        "output": (48, 6, 6, 0),  # 10 float32 = 40, aligned to 48
        "model/softmax/Softmax": (16, 5, 6, 48),  # 10 bytes, aligned; above the output
        "model/fc/BiasAdd": (16, 4, 5, 0),
        "model/pool/Mean": (16, 3, 4, 256),  # above the dw out (0…256)
    }
    assert arena.bytes == 960 and arena.peak_at() == 0


def test_memory_planner_tflm_on_a_file_and_a_spec(tmp_path):
    p = small(tmp_path / "q.tflite", "int8")
    out = runner.invoke(app, ["memory", str(p), "--planner", "tflm", "--format", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert (doc["arena_bytes"], doc["peak_operator"], doc["source"]) == \
        (960, 0, "as stored in the file")
    out = runner.invoke(app, ["memory", "mobilenet_v2", "--alpha", "0.35", "--res", "96",
                              "--planner", "tflm", "--dtype", "int8", "--format", "json"])
    doc = json.loads(out.output)
    # the float input 96·96·3·4 = 110,592 B beside its int8 copy 27,648 B: 138,240 B
    assert doc["arena_bytes"] == 138240
    assert doc["source"] == "the spec as 'export --format tflite --dtype int8' writes it"
    out = runner.invoke(app, ["memory", "mobilenet_v2", "--planner", "tflm"])
    assert out.exit_code == 2
    assert "give --dtype int8 or fp32, not fp16" in out.output


def test_offline_planned_offsets_are_kept(tmp_path):
    # the small network with the input fixed at offset 1,024 by the file: the others are
    # planned around it (below it: 960 − 768 = 192 fits under 1,024), and the arena ends
    # at 1,024 + 768 = 1,792
    from macscalc.models.tflite.arena import plan
    from macscalc.models.tflite.model import load

    n = len(load(str(small(tmp_path / "q.tflite", "int8"))).graphs[0].tensors)
    net = Net("int8")
    net.a.meta("OfflineMemoryAllocation", struct.pack(f"<{3 + n}i", 0, 0, n, 1024,
                                                      *[-1] * (n - 1)))
    arena = plan(load(str(small(tmp_path / "offline.tflite", "int8", net))))
    assert {b.tensor.name: b.offset for b in arena.buffers}["input"] == 1024
    assert arena.bytes == 1792
    net = Net("int8")
    net.a.meta("OfflineMemoryAllocation", struct.pack("<3i", 0, 0, n + 1))
    with pytest.raises(MacscalcError, match="does not describe subgraph 0's 15 tensors"):
        plan(load(str(small(tmp_path / "bad.tflite", "int8", net))))


def test_check_gates_flash_and_sram_of_a_tflite_file(tmp_path):
    # stored weights 736 B + biases 168 B = 904 B of flash; the TFLM arena 960 B of SRAM
    p = small(tmp_path / "q.tflite", "int8")
    ok = runner.invoke(app, ["check", str(p), "--max-size", "904", "--max-memory", "960",
                             "--format", "json"])
    assert ok.exit_code == 0, ok.output
    checks = json.loads(ok.output)["reports"][0]["checks"]
    assert [(c["metric"], c["value"]) for c in checks] == [("memory", 960), ("size", 904)]
    over = runner.invoke(app, ["check", str(p), "--max-size", "903", "--max-memory", "959"])
    assert over.exit_code == 1


def test_shape_arithmetic_of_a_symbolic_batch_counts_nothing(tmp_path):
    # Keras' Reshape((classes,)) under a symbolic batch, as the converter writes it:
    # SHAPE → STRIDED_SLICE → PACK gives the target of the RESHAPE; only the FC counts
    n = Net()
    x, _ = n.input((1, 1, 1, 8))
    w = n.weight("w", (4, 8))
    y = n.act("model/fc/BiasAdd", (1, 1, 1, 4))
    n.a.op("FULLY_CONNECTED", [x, w, -1], [y], ((0, "b", 0), (1, "b", 0), (2, "B", True)))
    shape = n.a.tensor("model/reshape/Shape", (4,), "int32")
    n.a.op("SHAPE", [y], [shape])
    batch = n.a.tensor("model/reshape/strided_slice", (), "int32")
    n.a.op("STRIDED_SLICE", [shape, n.ints("b", [0]), n.ints("e", [1]), n.ints("s", [1])],
           [batch])
    target = n.a.tensor("model/reshape/Reshape/shape", (2,), "int32")
    n.a.op("PACK", [batch, n.a.tensor("four", (), "int32", struct.pack("<i", 4))], [target])
    out = n.act("model/reshape/Reshape", (1, 4))
    n.a.op("RESHAPE", [y, target], [out])
    p = n.save(tmp_path / "shape.tflite", x, out)
    assert kinds(p) == ["linear"]
    assert counted(p).macs == 32  # 8·4


def test_symbolic_image_size_needs_res(tmp_path):
    # Keras' MobileNetV3 and EfficientNet default to a symbolic input size: the converter
    # writes 1×1 shapes with -1 in shape_signature. Counted at --res 8: conv 3·3·3·16 at
    # 4×4 = 6,912 MACs, FC 16·10 = 160
    n = Net()
    x = n.a.tensor("input", (1, 1, 1, 3), signature=(-1, -1, -1, 3))
    w = n.weight("w", (16, 3, 3, 3))
    y = n.a.tensor("model/conv/Relu", (1, 1, 1, 16), signature=(-1, -1, -1, 16))
    n.a.op("CONV_2D", [x, w, n.bias("b", 16, w)], [y],
           ((0, "b", 0), (1, "i", 2), (2, "i", 2), (3, "b", RELU)))
    pooled = n.a.tensor("model/pool/Mean", (1, 16), signature=(-1, 16))
    n.a.op("MEAN", [y, n.ints("axes", [1, 2])], [pooled], ((0, "B", False),))
    w = n.weight("fc", (10, 16))
    out = n.a.tensor("model/fc/BiasAdd", (1, 10), signature=(-1, 10))
    n.a.op("FULLY_CONNECTED", [pooled, w, n.bias("fb", 10, w)], [out], ((0, "b", 0),))
    p = n.save(tmp_path / "sym.tflite", x, out)
    assert error(p) == ("input 'input' has a symbolic height and width: give the image size "
                        "with --res R")
    r = count(read_network(str(p), res=8), Convention(PARAM_CONVENTIONS["weights"]))
    assert (r.macs, r.params, r.network.input) == (6912 + 160, 432 + 160, (8, 8, 3))
    out = runner.invoke(app, ["count", str(p), "--res", "16", "--format", "json"])
    assert json.loads(out.output)["reports"][0]["totals"]["macs"] == 6912 * 4 + 160


def test_a_weight_whose_buffer_contradicts_its_shape_is_refused(tmp_path):
    # a filter that claims 2^30 output channels over a 4-byte buffer: never counted
    n = Net()
    x, _ = n.input((1, 4, 4, 8))
    w = n.a.tensor("huge", (1 << 30, 1, 1, 8), "float32", bytes(4))
    y = n.act("model/conv/Conv2D", (1, 4, 4, 1 << 30))
    n.a.op("CONV_2D", [x, w, -1], [y], ((0, "b", 0), (1, "i", 1), (2, "i", 1)))
    p = n.save(tmp_path / "lie.tflite", x, y)
    assert error(p) == ("operator 0 (CONV_2D): tensor 'huge' declares [1073741824, 1, 1, 8] "
                        "float32 values but its buffer holds 4 bytes")


def test_converter_layer_norm_and_dense_over_positions(tmp_path):
    """Keras' LayerNormalization and a Dense on an h×w×c image, as TF's converter writes
    them for ConvNeXt (the operator sequence of its converted ConvNeXt-Tiny): one
    layernorm (γ, β: 8 + 8 parameters) and a linear layer at every position,
    4·4·8·16 = 2,048 MACs."""
    n = Net()
    x, _ = n.input((1, 4, 4, 8))
    c = lambda name, v, shape=(): n.a.tensor(name, shape, "float32",  # noqa: E731
                                             np.full(max(1, int(np.prod(shape))), v,
                                                     np.float32).tobytes())
    axes = n.ints("axes", [-1])
    hw1, hwc = (1, 4, 4, 1), (1, 4, 4, 8)
    mean = n.act("ln/moments/mean", hw1)
    n.a.op("MEAN", [x, axes], [mean], ((0, "B", True),))
    neg = n.act("ln/Neg", hw1)
    n.a.op("NEG", [mean], [neg])
    sq = n.act("ln/moments/SquaredDifference", hwc)
    n.a.op("SQUARED_DIFFERENCE", [x, mean], [sq])
    var = n.act("ln/moments/variance", hw1)
    n.a.op("MEAN", [sq, axes], [var], ((0, "B", True),))
    eps = n.act("ln/add", hw1)
    n.a.op("ADD", [var, c("eps", 1e-6)], [eps], ((0, "b", 0),))
    r = n.act("ln/Rsqrt", hw1)
    n.a.op("RSQRT", [eps], [r])
    g = n.act("ln/mul", hwc)
    n.a.op("MUL", [r, c("gamma", 1.0, (1, 1, 1, 8))], [g], ((0, "b", 0),))
    a = n.act("ln/mul_1", hwc)
    n.a.op("MUL", [neg, g], [a], ((0, "b", 0),))
    b = n.act("ln/mul_2", hwc)
    n.a.op("MUL", [x, g], [b], ((0, "b", 0),))
    ln = n.act("ln/add_2", hwc)
    n.a.op("ADD", [b, a], [ln], ((0, "b", 0),))
    rows = n.a.tensor("dense/Reshape", (1, 1), signature=(-1, -1))
    n.a.op("RESHAPE", [ln, n.ints("rows", [16, 8])], [rows])
    w = n.weight("dense/kernel", (16, 8))
    y = n.act("dense/MatMul", (1, 16))
    n.a.op("FULLY_CONNECTED", [rows, w, -1], [y], ((0, "b", 0), (1, "b", 0), (2, "B", False)))
    out = n.act("dense/Reshape_1", (1, 4, 4, 16))
    n.a.op("RESHAPE", [y, n.ints("back", [1, 4, 4, 16])], [out])
    p = n.save(tmp_path / "ln.tflite", x, out)
    r = counted(p)
    assert kinds(p) == ["layernorm", "linear"]
    assert (r.macs, r.param_parts.weights, r.param_parts.ln_scale, r.param_parts.ln_shift) == \
        (2048, 128, 8, 8)
