"""The model zoo against independent truths: the reference code's recorded state_dict layouts
(model_keys.json), torchvision's ResNets, and what a block must compute when its residual is silenced."""

import json
from pathlib import Path

import pytest
import torch
import torchvision

from landscape.errors import ModelError
from landscape.inputs.models import MODEL_NAMES, build_model, get_model
from landscape.inputs.models.resnet import BasicBlock, Bottleneck

REPO = Path(__file__).resolve().parents[1]
MODEL_KEYS_CANDIDATES = [
    REPO / "tests" / "data" / "model_keys.json",
    Path("/work/shared/reference/model_keys.json"),
]
REFERENCE_NAMES = [
    "resnet20", "resnet20_noshort", "resnet56", "resnet56_noshort", "resnet110", "resnet110_noshort",
    "wrn56_2", "vgg9", "densenet121",
]
REQUIRED_EXTRAS = [
    "resnet32_noshort", "resnet44_noshort", "wrn56_4", "wrn56_8", "wrn56_2_noshort", "wrn56_4_noshort",
    "wrn56_8_noshort", "wrn110_2_noshort", "wrn110_4_noshort", "resnet18", "resnet34", "resnet50",
    "resnet18_noshort", "resnet34_noshort", "resnet50_noshort",
]
EXTRA_NAMES = sorted(set(MODEL_NAMES) - set(REFERENCE_NAMES))
SMALL_EXTRAS = ["resnet32", "resnet18"]


@pytest.fixture(scope="module")
def reference():
    path = next((p for p in MODEL_KEYS_CANDIDATES if p.is_file()), None)
    assert path is not None, f"model_keys.json not found in any of {MODEL_KEYS_CANDIDATES}"
    return json.loads(path.read_text())["models"]


def layout(model):
    return [(key, list(value.shape)) for key, value in model.state_dict().items()]


def expected_layout(reference, name):
    return [(key, shape) for key, shape in reference[name]["state_dict"]]


def on_meta(name, num_classes=10):
    """Built on the meta device: real shapes, no memory or init cost."""
    with torch.device("meta"):
        return get_model(name, num_classes=num_classes)


def forward(model, batch=2):
    torch.manual_seed(0)
    with torch.no_grad():
        return model.eval()(torch.randn(batch, 3, 32, 32))


def test_reference_file_lists_exactly_the_models_checked_here(reference):
    assert sorted(reference) == sorted(REFERENCE_NAMES)


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_state_dict_names_shapes_and_order_match_reference(reference, name):
    model = on_meta(name)
    assert layout(model) == expected_layout(reference, name)
    assert sum(p.numel() for p in model.parameters()) == reference[name]["num_parameters"]


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_reference_models_forward_two_images(name):
    out = forward(get_model(name))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", SMALL_EXTRAS)
def test_small_extra_models_forward_two_images(name):
    out = forward(get_model(name, num_classes=7))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", EXTRA_NAMES)
def test_every_extra_model_forwards_to_num_classes(name):
    # Shape-level forward on the meta device keeps the big nets (resnet152, wrn56_8) out of CPU time.
    model = on_meta(name, num_classes=7).eval()
    out = model(torch.empty(2, 3, 32, 32, device="meta"))
    assert out.shape == (2, 7)


def test_num_classes_sets_output_width():
    assert forward(get_model("resnet20", num_classes=100)).shape == (2, 100)
    assert layout(on_meta("vgg9", num_classes=100))[-2] == ("classifier.weight", [100, 256])


def test_model_names_sorted_and_complete():
    assert MODEL_NAMES == sorted(MODEL_NAMES)
    missing = set(REFERENCE_NAMES + REQUIRED_EXTRAS) - set(MODEL_NAMES)
    assert not missing


def blocks_below(entries, blocks_per_stage):
    """Keep the stem, head, and the first `blocks_per_stage` blocks of each stage."""
    return [(k, s) for k, s in entries
            if not k.startswith("layer") or int(k.split(".")[1]) < blocks_per_stage]


@pytest.mark.parametrize("name, source, blocks_per_stage", [
    ("resnet32", "resnet110", 5), ("resnet32_noshort", "resnet110_noshort", 5),
    ("resnet44", "resnet110", 7), ("resnet44_noshort", "resnet110_noshort", 7),
    ("resnet50_16_noshort", "resnet110_noshort", 8),
])
def test_other_depths_are_truncations_of_reference_resnet110(reference, name, source, blocks_per_stage):
    assert layout(on_meta(name)) == blocks_below(expected_layout(reference, source), blocks_per_stage)


def widen(entries, k):
    """Layout of a k-times wider CIFAR ResNet: every channel count times k, except RGB in and classes out."""
    widened = []
    for key, shape in entries:
        if key == "conv1.weight":
            shape = [shape[0] * k] + shape[1:]
        elif key == "linear.weight":
            shape = [shape[0], shape[1] * k]
        elif len(shape) == 4:
            shape = [shape[0] * k, shape[1] * k] + shape[2:]
        elif len(shape) == 1 and key != "linear.bias":
            shape = [shape[0] * k]
        widened.append((key, shape))
    return widened


def test_widen_rule_reproduces_reference_wrn56_2(reference):
    assert widen(expected_layout(reference, "resnet56"), 2) == expected_layout(reference, "wrn56_2")


@pytest.mark.parametrize("name, source, k", [
    ("wrn56_4", "resnet56", 4), ("wrn56_8", "resnet56", 8),
    ("wrn56_2_noshort", "resnet56_noshort", 2), ("wrn56_4_noshort", "resnet56_noshort", 4),
    ("wrn56_8_noshort", "resnet56_noshort", 8),
    ("wrn110_2_noshort", "resnet110_noshort", 2), ("wrn110_4_noshort", "resnet110_noshort", 4),
])
def test_wide_resnets_widen_reference_layouts(reference, name, source, k):
    assert layout(on_meta(name)) == widen(expected_layout(reference, source), k)


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_imagenet_style_resnets_match_torchvision_except_stem(depth):
    with torch.device("meta"):
        theirs = getattr(torchvision.models, f"resnet{depth}")(num_classes=10)
    expected = [(k.replace("downsample", "shortcut").replace("fc.", "linear."), s) for k, s in layout(theirs)]
    # The reference swaps torchvision's 7x7 stride-2 stem for a 3x3 stride-1 conv (32x32 inputs).
    assert expected[0] == ("conv1.weight", [64, 3, 7, 7])
    expected[0] = ("conv1.weight", [64, 3, 3, 3])
    assert layout(on_meta(f"resnet{depth}")) == expected
    assert layout(on_meta(f"resnet{depth}_noshort")) == [(k, s) for k, s in expected if ".shortcut." not in k]


def silence_last_bn(block):
    last_bn = block.bn3 if isinstance(block, Bottleneck) else block.bn2
    torch.nn.init.zeros_(last_bn.weight)
    torch.nn.init.zeros_(last_bn.bias)
    return block.eval()


@pytest.mark.parametrize("block_type", [BasicBlock, Bottleneck])
def test_block_with_silenced_residual_passes_only_the_shortcut(block_type):
    planes = 4
    in_planes = planes * block_type.expansion
    x = torch.randn(2, in_planes, 6, 6)
    with torch.no_grad():
        assert torch.equal(silence_last_bn(block_type(in_planes, planes))(x), torch.relu(x))
        without_shortcut = silence_last_bn(block_type(in_planes, planes, shortcut=False))
        assert torch.equal(without_shortcut(x), torch.zeros_like(x))


def test_shortcut_free_bottleneck_returns_before_final_relu_like_the_reference():
    x = torch.randn(2, 16, 6, 6)
    bottleneck, basic = Bottleneck(16, 4, shortcut=False).eval(), BasicBlock(16, 16, shortcut=False).eval()
    for last_bn in (bottleneck.bn3, basic.bn2):
        torch.nn.init.zeros_(last_bn.weight)
        torch.nn.init.constant_(last_bn.bias, -1.0)
    with torch.no_grad():
        assert torch.equal(bottleneck(x), torch.full_like(x, -1.0))
        assert torch.equal(basic(x), torch.zeros_like(x))


def test_noshort_network_output_is_constant_when_every_block_is_silenced():
    torch.manual_seed(1)
    with_short, without = get_model("resnet20"), get_model("resnet20_noshort")
    for model in (with_short, without):
        for stage in (model.layer1, model.layer2, model.layer3):
            for block in stage:
                silence_last_bn(block)
        torch.nn.init.normal_(model.linear.bias)
    out_without = forward(without)
    assert torch.equal(out_without, without.linear.bias.detach().expand(2, -1))
    out_with = forward(with_short)
    assert not torch.allclose(out_with[0], out_with[1])


def test_unknown_model_lists_known_names_and_custom_form():
    with pytest.raises(ModelError) as info:
        get_model("resnet21")
    message = str(info.value)
    assert "'resnet21'" in message and "resnet20" in message and "wrn56_2" in message
    assert "module:factory" in message


@pytest.mark.parametrize("num_classes", [0, -3, 2.5, True])
def test_bad_num_classes_rejected(num_classes):
    with pytest.raises(ModelError, match="num_classes"):
        get_model("resnet20", num_classes=num_classes)


def test_build_model_zoo_name_uses_num_classes():
    model = build_model("resnet20", num_classes=5)
    assert model.linear.out_features == 5


def test_build_model_zoo_name_refuses_kwargs():
    with pytest.raises(ModelError, match="module:factory"):
        build_model("resnet20", kwargs={"width": 2})


def test_build_model_custom_factory_gets_only_kwargs():
    model = build_model("torch.nn:Linear", kwargs={"in_features": 3, "out_features": 2})
    assert isinstance(model, torch.nn.Linear)
    assert (model.in_features, model.out_features) == (3, 2)
