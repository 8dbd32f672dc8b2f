"""The four models, build_model and the counting / tracing utilities."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cifar_helpers.models import (
    MODEL_NAMES,
    BasicBlock,
    Bottleneck,
    bottleneck_claim_holds,
    build_model,
    compare_blocks,
    count_macs,
    count_parameters,
    model_options,
    model_summary,
    trace_model,
)


@pytest.fixture(scope="module")
def custom():
    torch.manual_seed(0)
    return build_model("custom_resnet")


def residual_blocks(model):
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (BasicBlock, Bottleneck))]


# ---------------------------------------------------------------- every model


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_backward_gives_logits_and_finite_gradients(name):
    torch.manual_seed(0)
    model = build_model(name)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_channels_last_input_gives_the_same_logits(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        got = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_construction_is_deterministic_given_the_seed(name):
    torch.manual_seed(23)
    first = build_model(name).state_dict()
    torch.manual_seed(23)
    second = build_model(name).state_dict()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


@pytest.mark.parametrize("name, batch_norm", [("dnn", True), ("cnn", True), ("resnet", False)])
def test_lecture_models_batch_norm_as_the_study_chose_and_no_dropout(name, batch_norm):
    """docs/lecture-models.md: the DNN and CNN need batch norm to train under the protocol; the ResNet
    does without, as the report's words have it. None has dropout."""
    kinds = {type(m) for m in build_model(name).modules()}
    assert bool(kinds & {nn.BatchNorm2d, nn.BatchNorm1d}) == batch_norm and nn.Dropout not in kinds


# ---------------------------------------------------------------- build_model


def test_unknown_model_name_lists_the_valid_names():
    with pytest.raises(ValueError) as error:
        build_model("vgg")
    assert "vgg" in str(error.value)
    for name in MODEL_NAMES:
        assert name in str(error.value)


def test_unknown_option_names_the_model_and_its_options():
    with pytest.raises(TypeError) as error:
        build_model("cnn", depth=5)
    message = str(error.value)
    assert "'cnn'" in message and "depth" in message
    for option in model_options("cnn"):
        assert option in message


def test_options_reach_the_model():
    model = build_model("custom_resnet", dropout=0.3, blocks=(1, 1, 1, 1))
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 4 and all(d.p == 0.3 for d in dropouts)
    assert trace_model(model)["blocks"].tolist() == [0, 0, 1, 1, 1, 1, 0, 0]


def test_lecture_model_options_build_the_study_candidates():
    """The shapes benchmarks/lecture_models.py screens (docs/lecture-models.md)."""
    bn_mlp = build_model("dnn", hidden=(512, 256), batch_norm=True)
    assert [m.num_features for m in bn_mlp.modules() if isinstance(m, nn.BatchNorm1d)] == [512, 256]
    sigmoid = build_model("dnn", hidden=(64,), activation="sigmoid")
    assert any(isinstance(m, nn.Sigmoid) for m in sigmoid.modules()) and sigmoid(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="activation must be one of"):
        build_model("dnn", activation="gelu")
    bn_cnn = build_model("cnn", batch_norm=True, dropout=0.5)
    convs = [m for m in bn_cnn.modules() if isinstance(m, nn.Conv2d)]
    assert len([m for m in bn_cnn.modules() if isinstance(m, nn.BatchNorm2d)]) == len(convs) == 5
    assert all(conv.bias is None for conv in convs)  # batch norm's shift replaces the bias
    assert [m.p for m in bn_cnn.modules() if isinstance(m, nn.Dropout)] == [0.5]
    plain_resnet, bn_resnet = build_model("resnet", batch_norm=False), build_model("resnet", batch_norm=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain_resnet.modules())
    # 1 stem + 2 per block + 2 projections
    assert len([m for m in bn_resnet.modules() if isinstance(m, nn.BatchNorm2d)]) == 1 + 2 * 6 + 2
    # zero-init of the residual branch only without batch norm
    assert all(torch.count_nonzero(b.conv2.weight) > 0 for b in bn_resnet.modules() if isinstance(b, BasicBlock))


def test_dropout_must_be_a_probability():
    with pytest.raises(ValueError, match="dropout"):
        build_model("custom_resnet", dropout=1.5)


# ---------------------------------------------------------------- architectures


def test_dnn_layers():
    linears = [m for m in build_model("dnn").modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3072, 512), (512, 256), (256, 10)]
    assert count_parameters(build_model("dnn")) == 1_708_810


def test_cnn_stages():
    table = trace_model(build_model("cnn"))
    assert table["stage"].tolist() == ["input", "block1", "block2", "block3", "flatten", "fc1", "fc"]
    assert table["output_shape"].tolist() == ["3×32×32", "32×16×16", "64×8×8", "128×4×4", "2048", "256", "10"]
    assert table["blocks"].sum() == 0


def test_resnet_stages_and_options():
    table = trace_model(build_model("resnet"))
    assert table["stage"].tolist() == ["input", "stem", "layer1", "layer2", "layer3", "pool", "fc"]
    assert table["output_shape"].tolist() == ["3×32×32", "32×32×32", "32×32×32", "64×16×16", "128×8×8", "128×1×1",
                                              "10"]
    assert count_parameters(build_model("resnet")) == 695_498
    assert not any(isinstance(m, nn.BatchNorm2d) for m in build_model("resnet").modules())  # the report's words
    assert count_parameters(build_model("resnet", widths=(16, 32, 64), batch_norm=True)) == 175_258  # the study's R1
    assert table["blocks"].tolist() == [0, 0, 2, 2, 2, 0, 0]
    wider = trace_model(build_model("resnet", widths=(16, 32, 64, 128), blocks=(1, 2, 3, 1)))
    assert wider["blocks"].tolist() == [0, 0, 1, 2, 3, 1, 0, 0]
    assert wider.set_index("stage").loc["layer4", "output_shape"] == "128×4×4"


def test_resnet_without_batch_norm_blocks_start_as_the_identity():
    torch.manual_seed(0)
    model = build_model("resnet")
    for name, block in residual_blocks(model):
        assert not block.conv2.weight.any(), name
    block = model.layer1[1]  # identity shortcut
    x = torch.relu(torch.randn(2, 32, 32, 32))
    torch.testing.assert_close(block(x), x)


def test_custom_resnet_stage_shapes_and_block_counts(custom):
    table = trace_model(custom).set_index("stage")
    assert list(table.index) == ["input", "stem", "layer1", "layer2", "layer3", "layer4", "pool", "fc"]
    assert table.loc["input", "output_shape"] == "3×32×32"
    assert table.loc["stem", "output_shape"] == "64×16×16"
    stages = table.loc[["layer1", "layer2", "layer3", "layer4"]]
    assert stages["blocks"].tolist() == [3, 4, 6, 3]
    assert stages["channels"].tolist() == [64, 128, 256, 512]
    assert stages["output_shape"].tolist() == ["64×16×16", "128×8×8", "256×4×4", "512×2×2"]
    assert table.loc["pool", "output_shape"] == "512×1×1"
    assert table.loc["fc", "output_shape"] == "10"


def test_custom_resnet_stem(custom):
    conv, norm, relu = custom.stem
    assert (conv.kernel_size, conv.stride, conv.padding) == ((7, 7), (2, 2), (3, 3))
    assert (conv.in_channels, conv.out_channels, conv.bias) == (3, 64, None)
    assert isinstance(norm, nn.BatchNorm2d) and isinstance(relu, nn.ReLU)
    assert not any(isinstance(m, nn.MaxPool2d) for m in custom.modules())


def test_projection_shortcuts_exactly_where_the_shape_changes(custom):
    projected = []
    for name, block in residual_blocks(custom):
        shape_changes = block.conv1.in_channels != block.conv3.out_channels or block.conv2.stride != (1, 1)
        has_projection = not isinstance(block.shortcut, nn.Identity)
        assert has_projection == shape_changes, name
        if has_projection:
            projected.append(name)
            conv, norm = block.shortcut
            assert conv.kernel_size == (1, 1) and conv.stride == block.conv2.stride and conv.bias is None
            assert isinstance(norm, nn.BatchNorm2d)
    assert projected == ["layer2.0", "layer3.0", "layer4.0"]


def test_bottleneck_block_layout(custom):
    block = custom.layer3[0]
    assert [c.kernel_size for c in (block.conv1, block.conv2, block.conv3)] == [(1, 1), (3, 3), (1, 1)]
    assert (block.conv1.in_channels, block.conv1.out_channels) == (128, 256 // 4)
    assert (block.conv2.in_channels, block.conv2.out_channels, block.conv2.stride) == (64, 64, (2, 2))
    assert (block.conv3.in_channels, block.conv3.out_channels) == (64, 256)
    assert all(c.bias is None for c in (block.conv1, block.conv2, block.conv3))
    assert all(isinstance(n, nn.BatchNorm2d) for n in (block.bn1, block.bn2, block.bn3))
    assert isinstance(block.dropout, nn.Dropout) and block.dropout.p == 0.1
    assert list(dict(block.named_children())) == ["conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "shortcut", "dropout"]
    wide = build_model("custom_resnet", bottleneck_factor=2)
    assert wide.layer3[0].conv2.in_channels == 256 // 2


def test_dropout_runs_only_in_training(custom):
    block = Bottleneck(8, 8, dropout=0.5)
    x = torch.randn(4, 8, 6, 6)
    block.eval()
    torch.testing.assert_close(block(x), block(x))
    block.train()
    torch.manual_seed(0)
    out = block(x)
    assert (out == 0).float().mean() > 0.4  # about half dropped, the rest scaled


# ---------------------------------------------------------------- counting


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parameter_count_is_a_sum_over_modules(name):
    model = build_model(name)
    per_module = sum(p.numel() for m in model.modules() for p in m.parameters(recurse=False))
    assert count_parameters(model) == per_module > 0
    table = trace_model(model)
    assert table["params"].sum() == count_parameters(model)
    assert table["macs"].sum() == count_macs(model) > 0


def test_count_parameters_skips_frozen_ones():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    assert count_parameters(model) == 3 * 2 + 2


def test_count_macs_of_single_layers():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_macs(conv, (1, 3, 32, 32)) == (8 * 32 * 32) * 3 * 3 * 3
    strided = nn.Conv2d(4, 6, (3, 5), stride=2, padding=(1, 2), groups=2)
    assert count_macs(strided, (2, 4, 10, 10)) == (2 * 6 * 5 * 5) * (4 // 2) * 3 * 5
    linear = nn.Linear(20, 7)
    assert count_macs(linear, (5, 20)) == 5 * 20 * 7
    assert count_macs(nn.Sequential(nn.Flatten(), nn.ReLU(), nn.Linear(12, 2)), (1, 3, 2, 2)) == 12 * 2


def test_counting_keeps_the_training_mode(custom):
    custom.train()
    count_macs(custom)
    trace_model(custom)
    assert custom.training and all(m.training for m in custom.modules())


def test_model_summary_names_model_and_stages(custom):
    text = model_summary(custom)
    assert text.startswith("CustomResNet")
    assert f"{count_parameters(custom):,}" in text
    for stage in ["stem", "layer1", "layer2", "layer3", "layer4", "pool", "fc"]:
        assert stage in text
    layer4 = next(line.split() for line in text.splitlines() if line.split()[0] == "layer4")
    assert layer4[-2:] == [f"{count_parameters(custom.layer4):,}", f"{count_macs(custom.layer4, (1, 256, 4, 4)):,}"]


# ---------------------------------------------------------------- block comparison


def test_compare_blocks_counts_from_real_blocks():
    table = compare_blocks()
    assert table["width"].tolist() == [64, 128, 256, 512]
    assert table["spatial"].tolist() == [16, 8, 4, 2]
    assert (table["basic_convs"] == 2).all() and (table["bottleneck_convs"] == 3).all()
    assert bottleneck_claim_holds(table)
    assert (table["params_ratio"] == table["bottleneck_params"] / table["basic_params"]).all()


def test_compare_blocks_matches_the_closed_form_at_64_channels():
    row = compare_blocks(widths=(64,), spatial=(16,)).iloc[0]
    c, inner, hw = 64, 64 // 4, 16 * 16
    basic_weights = 2 * 9 * c * c
    bottleneck_weights = c * inner + 9 * inner * inner + inner * c
    assert row["basic_params"] == basic_weights + 2 * (2 * c)  # BN: weight and bias per channel
    assert row["bottleneck_params"] == bottleneck_weights + 2 * (inner + inner + c)
    assert row["basic_macs"] == basic_weights * hw
    assert row["bottleneck_macs"] == bottleneck_weights * hw


def test_claim_check_fails_when_the_bottleneck_is_not_cheaper():
    table = compare_blocks(widths=(64,), spatial=(16,))
    table.loc[0, "bottleneck_params"] = table.loc[0, "basic_params"]
    assert not bottleneck_claim_holds(table)


def test_compare_blocks_needs_one_spatial_size_per_width():
    with pytest.raises(ValueError, match="spatial"):
        compare_blocks(widths=(64, 128), spatial=(16,))


def test_decayed_weights_counts_zero_and_denormal_weights_and_scales_per_stage():
    from cifar_helpers.models.summary import decayed_weights

    torch.manual_seed(23)
    state = build_model("custom_resnet", blocks=(1, 1, 1, 1)).state_dict()
    conv = state["layer4.0.conv2.weight"]
    conv.view(-1)[: conv.numel() // 2] = 1e-40  # denormal in float32: decayed past the normal range
    state["layer4.0.bn3.weight"][:8] = 0.0
    state["layer3.0.conv1.weight"].view(-1)[0] = 1e-30  # tiny but normal: alive
    table = decayed_weights(state)
    assert list(table.index) == ["stem", "layer1", "layer2", "layer3", "layer4", "fc"]
    layer4 = {name: t for name, t in state.items() if name.startswith("layer4") and name.endswith("weight")}
    weights = sum(t.numel() for t in layer4.values() if t.dim() > 1)
    scales = sum(t.numel() for t in layer4.values() if t.dim() == 1)
    assert (table.loc["layer4", "weights"], table.loc["layer4", "batch-norm scales"]) == (weights, scales)
    assert table.loc["layer4", "decayed weights (%)"] == round(100 * (conv.numel() // 2) / weights, 1)
    assert table.loc["layer4", "decayed scales (%)"] == round(100 * 8 / scales, 1)
    assert table.loc["layer3", "decayed weights (%)"] == 0 and table.loc["stem", "decayed scales (%)"] == 0
    assert table.loc["fc", "batch-norm scales"] == 0 and table.loc["fc", "decayed scales (%)"] != table.loc["fc", "decayed scales (%)"]


def test_denormal_share_counts_nonzero_float32_numbers_below_the_normal_range():
    from cifar_helpers.models.summary import denormal_share
    tensors = [torch.tensor([1e-40, 0.0, 1e-30, -1e-39]), torch.tensor([1e-40], dtype=torch.float64), "not a tensor"]
    assert denormal_share(tensors) == 2 / 4  # zero is not denormal; float64 and other things are not counted
    assert denormal_share([]) == 0
