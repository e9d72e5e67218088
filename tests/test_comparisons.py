"""The papers' comparison systems computed beside their figures: SSD300/SSD512 on VGG-16
(dilated fc6, L2Norm), YOLOv2 (passthrough), ShuffleNet v1 and SSDLite on MobileNet V3
(with †)."""

from __future__ import annotations

import pytest

from macscalc.analysis.counting import PARAM_CONVENTIONS, Convention, count
from macscalc.core.errors import ShapeError
from macscalc.lang.graph import build
from macscalc.lang.layers import L2Norm, Shape, SpaceToDepth
from macscalc.lang.spec import load_spec

TORCH = Convention(PARAM_CONVENTIONS["torch"], ops=("mul", "add"))


def test_l2norm_is_a_scale_per_channel():
    x = Shape(38, 38, 512)
    layer = L2Norm()
    assert layer.out_shape([x]) == x
    assert layer.params([x]).layer_scale == 512  # γ, initialised to 20 in SSD
    assert layer.macs([x], x) == 0
    assert layer.ops([x], x) == {"mul": 3 * 38 * 38 * 512, "add": 38 * 38 * 512}


@pytest.mark.parametrize(("classes", "macs", "params"), [
    # torchvision ssd300_vgg16 (COCO, 91 classes): num_params 35,641,826, _ops 34.858 G
    (91, 34_858_153_472, 35_641_826),
    # the SSD paper's VOC model, 21 classes: 26,285,486 parameters (weiliu89/caffe)
    (21, 31_373_537_792, 26_285_486),
    (81, 34_360_351_232, 34_305_206),
])
def test_ssd300(classes, macs, params):
    report = count(build(load_spec("ssd300_vgg16"), classes=classes), TORCH)
    assert (report.macs, report.params) == (macs, params)
    shapes = {n.name: n.out for n in report.network.nodes}
    # conv4_3 at 38×38 (pool3 in ceil mode), fc6 dilated 6 keeps 19×19, extras 10, 5, 3, 1
    assert shapes["conv4_3_norm"] == (38, 38, 512)
    assert shapes["fc6/conv"] == (19, 19, 1024)
    assert [shapes[f"conv{i}_2/conv"][:2] for i in (6, 7, 8, 9)] == [(10, 10), (5, 5), (3, 3),
                                                                      (1, 1)]


def test_ssd512():
    report = count(build(load_spec("ssd512_vgg16")), TORCH)
    assert (report.macs, report.params) == (98_628_936_704, 36_038_196)
    shapes = {n.name: n.out[:2] for n in report.network.nodes}
    assert [shapes[f"conv{i}_2/conv"] for i in (6, 7, 8, 9, 10)] == [(16, 16), (8, 8), (4, 4),
                                                                       (2, 2), (1, 1)]


@pytest.mark.parametrize(("name", "macs", "params"), [
    # the ShuffleNet paper's Table 2 and the V2 paper's Table 4: 292 M / 3.4 M and
    # 524 M / 5.4 M (g = 3); both agree at the published precision
    ("shufflenet_v1_1_5x", 292_443_552, 3_441_168),
    ("shufflenet_v1_2x", 524_045_184, 5_449_776),
])
def test_shufflenet_v1(name, macs, params):
    report = count(build(load_spec(name)), TORCH)
    assert (report.macs, report.params) == (macs, params)
    kinds = {n.layer.kind for n in report.network.nodes}
    assert {"shuffle", "concat", "add"} <= kinds
    first = next(n for n in report.network.nodes
                 if n.layer.kind == "conv2d" and n.name.startswith("unit1"))
    assert first.layer.groups == 1  # the very first 1×1 is not grouped (24 or 48 inputs)
    groups = {n.layer.groups for n in report.network.nodes
              if n.layer.kind == "conv2d" and n.name.startswith("unit") and n is not first}
    assert groups == {3}


@pytest.mark.parametrize(("name", "macs", "params"), [
    # arXiv:1905.02244 Table 6, 91 scores, weights + biases: V3 0.62 B / 4.97 M, V3† 0.51 /
    # 3.22, V3-Small 0.21 / 2.49, V3-Small† 0.16 / 1.77 (all but V3's MAdds agree)
    ("ssdlite_mobilenet_v3_large", 613_143_104, 4_966_591),
    ("ssdlite_mobilenet_v3_large_rf2", 506_563_904, 3_215_311),
    ("ssdlite_mobilenet_v3_small", 210_417_856, 2_493_487),
    ("ssdlite_mobilenet_v3_small_rf2", 162_303_424, 1_765_279),
])
def test_ssdlite_v3(name, macs, params):
    report = count(build(load_spec(name)), Convention(PARAM_CONVENTIONS["weights+biases"]))
    assert (report.macs, report.params) == (macs, params)
    first = next(n for n in report.network.nodes if n.name.startswith("ssd_predictor1/"))
    # the first tap: the expansion of the first stride-32 block, at 20×20 (output stride 16)
    assert first.in_shapes[0][:2] == (20, 20)


def test_space_to_depth_floors_as_darknet():
    layer = SpaceToDepth(block=2)
    assert layer.out_shape([Shape(26, 26, 64)]) == Shape(13, 13, 256)
    assert layer.out_shape([Shape(25, 27, 64)]) == Shape(12, 13, 256)  # darknet: w / stride
    assert layer.macs([Shape(26, 26, 64)], Shape(13, 13, 256)) == 0
    with pytest.raises(ShapeError, match="a 2×2 block does not fit a 1×1 input"):
        layer.out_shape([Shape(1, 1, 8)])


def test_yolov2():
    report = count(build(load_spec("yolov2")), Convention(PARAM_CONVENTIONS["weights+biases"]))
    # Darknet yolov2.cfg at 416, 80 classes: the V2 paper's Table 6 gives 17.5 B / 50.7 M
    assert (report.macs, report.params) == (14_732_084_224, 50_942_217)
    concat = next(n for n in report.network.nodes if n.layer.kind == "concat")
    assert [s[2] for s in concat.in_shapes] == [256, 1024] and concat.out == (13, 13, 1280)
