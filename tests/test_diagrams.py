"""Fig 2 and Fig 3 are drawn from the model objects, and saved reproducibly."""

from __future__ import annotations

import matplotlib
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from cifar_helpers.report.diagrams import (custom_resnet_to_draw, draw_architecture, draw_bottleneck_block,
                                          draw_custom_resnet)
from cifar_helpers.report.style import save_figure
from cifar_helpers.models import build_model, trace_model


@pytest.fixture(scope="module")
def custom():
    torch.manual_seed(0)
    return build_model("custom_resnet")


@pytest.fixture(scope="module")
def fig2(custom):
    return draw_custom_resnet(custom)


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def assert_nothing_clipped(fig: Figure) -> None:
    renderer = fig.canvas.get_renderer()
    bounds = fig.bbox
    for artist in fig.axes[0].get_children():
        if isinstance(artist, Text) and artist.get_text():
            box = artist.get_window_extent(renderer)
            inside = box.x0 >= bounds.x0 and box.y0 >= bounds.y0 and box.x1 <= bounds.x1 and box.y1 <= bounds.y1
            assert inside, f"text {artist.get_text()!r} is cut off at the figure's edge"


def test_fig2_shows_every_stage_with_its_output_shape(custom, fig2):
    shown = "\n".join(texts(fig2))
    for stage in dict(custom.named_children()):
        assert stage in texts(fig2)
    for shape in trace_model(custom)["output_shape"]:
        assert shape in shown
    assert "7×7 conv, 3→64, stride 2" in shown
    for count, width in [(3, 64), (4, 128), (6, 256), (3, 512)]:
        assert f"{count} × Bottleneck, {width} channels" in shown
    assert_nothing_clipped(fig2)


def test_fig2_follows_the_model():
    changed = draw_custom_resnet(build_model("custom_resnet", blocks=(2, 2, 5, 2), widths=(32, 64, 128, 256)))
    shown = "\n".join(texts(changed))
    assert "5 × Bottleneck, 128 channels" in shown
    assert "6 × Bottleneck" not in shown
    assert "linear 256→10" in shown


def test_architecture_of_a_lecture_model():
    fig = draw_architecture(build_model("cnn"), title="")
    shown = "\n".join(texts(fig))
    assert "block1" in shown and "32×16×16" in shown and "max pool 2" in shown
    assert "CNN" not in shown  # title="" leaves the title out
    assert_nothing_clipped(fig)


def test_fig3_bottleneck_with_projection(custom):
    fig = draw_bottleneck_block(custom.layer2[0])
    shown = texts(fig)
    assert shown.count("1×1 conv, 64→32") == 1
    assert shown.count("3×3 conv, 32→32, stride 2") == 1
    assert shown.count("1×1 conv, 32→128") == 1
    assert shown.count("1×1 conv, 64→128, stride 2") == 1  # the projection
    assert shown.count("BatchNorm") == 4
    assert shown.count("ReLU") == 3
    assert shown.count("+") == 1
    assert "Dropout, p = 0.1" in shown
    assert "projection shortcut" in shown
    for name in ["conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "shortcut.0", "shortcut.1", "dropout"]:
        assert name in shown
    assert_nothing_clipped(fig)


def test_fig3_identity_block_and_dropout_option():
    model = build_model("custom_resnet", dropout=0.25, blocks=(2, 1, 1, 1))
    shown = texts(draw_bottleneck_block(model.layer1[1]))
    assert "identity shortcut" in shown and "projection shortcut" not in shown
    assert "Dropout, p = 0.25" in shown
    assert shown.count("BatchNorm") == 3


def test_fig3_draws_a_basic_block_without_batch_norm():
    shown = texts(draw_bottleneck_block(build_model("resnet").layer2[0]))  # the lecture ResNet has none
    assert shown.count("3×3 conv, 32→64, stride 2") == 1
    assert "BatchNorm" not in shown and "identity" not in shown  # a missing norm is not drawn
    assert "projection shortcut" in shown


def test_drawing_leaves_the_global_style_alone(custom):
    before = dict(matplotlib.rcParams)
    draw_bottleneck_block(custom.layer1[0])
    assert dict(matplotlib.rcParams) == before


def test_save_figure_writes_png_and_pdf_reproducibly(fig2, tmp_path):
    paths = save_figure(fig2, tmp_path / "figs" / "fig2")
    assert [p.name for p in paths] == ["fig2.png", "fig2.pdf"]
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["fig2.pdf", "fig2.png"]  # no temp files
    with Image.open(paths[0]) as image:
        assert image.info["dpi"][0] == pytest.approx(200, abs=0.01)
        width_in, height_in = fig2.get_size_inches()
        assert image.size == (round(width_in * 200), round(height_in * 200))
        assert "Software" not in image.info
    assert paths[1].read_bytes().startswith(b"%PDF")
    assert b"CreationDate" not in paths[1].read_bytes()
    first = [p.read_bytes() for p in paths]
    again = save_figure(fig2, tmp_path / "figs" / "fig2.png")  # a suffix on the path is dropped
    assert again == paths
    assert [p.read_bytes() for p in again] == first


def test_save_figure_refuses_low_dpi(fig2, tmp_path):
    with pytest.raises(ValueError, match="dpi"):
        save_figure(fig2, tmp_path / "low", dpi=72)
    assert list(tmp_path.iterdir()) == []


def test_figures_display_in_jupyter_without_pyplot(fig2):
    assert fig2._repr_png_().startswith(b"\x89PNG")


def test_the_custom_resnet_to_draw_is_the_same_module_every_time_and_takes_a_runs_architecture():
    first, again = custom_resnet_to_draw(), custom_resnet_to_draw()
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert trace_model(first).equals(trace_model(build_model("custom_resnet")))
    assert custom_resnet_to_draw({"dropout": 0.3}).layer1[0].dropout.p == 0.3
