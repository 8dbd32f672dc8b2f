"""Architecture figures drawn from the model objects: the report's Fig 2 and Fig 3.

Nothing here lists layers by hand. Fig 2 takes its stages, their order and
their output shapes from a traced forward pass (`models.summary.trace_model`)
and the kernel sizes, strides and channel counts from the modules. Fig 3
takes the block's data flow from `torch.fx` (which ops run, in which order,
and where the skip connection joins) and the labels from the modules. A
change to a model shows up in its figure.

Boxes are sized from the measured text, and the figure from the boxes, so
nothing is clipped whatever the labels say. Coordinates are in inches.
"""

from __future__ import annotations

import io
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import matplotlib
import torch
import torch.fx
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch
from torch import nn

from cifar_helpers.report.style import OKABE_ITO, STYLE, save_figure, shade, tint
from cifar_helpers.models import build_model
from cifar_helpers.models.layers import GlobalAvgPool
from cifar_helpers.models.summary import IMAGE_SHAPE, RESIDUAL_BLOCKS, count_parameters, format_shape, trace_model

__all__ = ["custom_resnet_to_draw", "draw_custom_resnet", "draw_architecture", "draw_bottleneck_block", "describe_module", "save_figure"]

FONT_SIZE = 10
SMALL_FONT_SIZE = 8.5
PAD_X, PAD_Y = 0.14, 0.08  # inner padding of a box
LINE_SPACING = 1.3
MARGIN = 0.2
MAX_LINE_INCHES = 3.4  # wrap descriptions longer than this
TITLE_GAP = 0.25

# Fill colour by kind of layer.
KIND_COLOURS = {
    "conv": OKABE_ITO["blue"],
    "norm": OKABE_ITO["yellow"],
    "activation": OKABE_ITO["bluish_green"],
    "residual": OKABE_ITO["orange"],
    "pool": OKABE_ITO["sky_blue"],
    "linear": OKABE_ITO["vermillion"],
    "dropout": OKABE_ITO["reddish_purple"],
    "other": OKABE_ITO["grey"],
}


# ---------------------------------------------------------------- labels


def describe_module(module: nn.Module, short: bool = False) -> str:
    """A reader's name for a layer, from its attributes: '7×7 conv, 3→64, stride 2'."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        text = f"{kh}×{kw} conv, {module.in_channels}→{module.out_channels}"
        if max(module.stride) > 1:
            text += f", stride {module.stride[0]}"
        return text
    if isinstance(module, nn.BatchNorm2d):
        return "BN" if short else "BatchNorm"
    if isinstance(module, nn.ReLU):
        return "ReLU"
    if isinstance(module, nn.Dropout):
        return f"Dropout, p = {module.p:g}"
    if isinstance(module, nn.Linear):
        return f"linear {module.in_features}→{module.out_features}"
    if isinstance(module, GlobalAvgPool):
        return "global average pool"
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return "global average pool" if module.output_size in (1, (1, 1)) else f"adaptive avg pool {module.output_size}"
    if isinstance(module, nn.MaxPool2d):
        return f"max pool {module.kernel_size}"
    if isinstance(module, nn.Flatten):
        return "flatten"
    if isinstance(module, nn.Identity):
        return "identity"
    blocks = [m for m in module.children() if isinstance(m, RESIDUAL_BLOCKS)]
    if blocks:
        convs = [m for m in blocks[0].modules() if isinstance(m, nn.Conv2d)]
        stride = max(max(c.stride) for c in convs)
        text = f"{len(blocks)} × {type(blocks[0]).__name__}, {convs[-1].out_channels} channels"
        return text + (f", first stride {stride}" if stride > 1 else "")
    children = list(module.children())
    if children:
        return " · ".join(describe_module(child, short=True) for child in children)
    return type(module).__name__


def _kind(module: nn.Module) -> str:
    """Which colour a layer gets: the first match, in this order, among its modules."""
    if any(isinstance(m, RESIDUAL_BLOCKS) for m in module.modules()):
        return "residual"
    for types, kind in (
        (nn.Conv2d, "conv"),
        (nn.Linear, "linear"),
        ((GlobalAvgPool, nn.AdaptiveAvgPool2d, nn.MaxPool2d, nn.AvgPool2d), "pool"),
        (nn.BatchNorm2d, "norm"),
        (nn.Dropout, "dropout"),
        (nn.ReLU, "activation"),
    ):
        if any(isinstance(m, types) for m in module.modules()):
            return kind
    return "other"


# ---------------------------------------------------------------- canvas


@dataclass
class _Box:
    lines: list[str]  # the first line is the title when `bold_title`
    kind: str
    bold_title: bool = True
    width: float = 0.0
    height: float = 0.0
    x: float = 0.0  # centre
    y: float = 0.0
    side_label: str = ""  # small grey text left of the box
    extra: dict = field(default_factory=dict)


class DiagramFigure(Figure):
    """A Figure that shows itself in Jupyter, also where pyplot (and with it
    the inline backend's display hook) was never imported."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()


class _Canvas:
    """A figure whose data coordinates are inches, with measured text."""

    def __init__(self):
        # Sizes are measured in inches, so the screen dpi here does not matter;
        # save_figure sets the file's dpi.
        self.fig = DiagramFigure(figsize=(4, 4), dpi=100)
        FigureCanvasAgg(self.fig)
        self.renderer = self.fig.canvas.get_renderer()
        self.artists: list = []

    def text_size(self, text: str, size: float = FONT_SIZE, bold: bool = False) -> tuple[float, float]:
        prop = FontProperties(family=STYLE["font.family"], size=size, weight="bold" if bold else "normal")
        width, height, _ = self.renderer.get_text_width_height_descent(text, prop, ismath=False)
        return width / self.fig.dpi, height / self.fig.dpi

    def wrap(self, text: str, max_width: float = MAX_LINE_INCHES, sep: str = " · ") -> list[str]:
        """Split at `sep` into lines no wider than `max_width` (a single part may be wider)."""
        lines: list[str] = []
        for part in text.split(sep):
            if lines and self.text_size(lines[-1] + sep + part)[0] <= max_width:
                lines[-1] += sep + part
            else:
                lines.append(part)
        return lines

    def size_box(self, box: _Box) -> None:
        line_height = FONT_SIZE / 72 * LINE_SPACING
        widths = [self.text_size(line, bold=box.bold_title and i == 0)[0] for i, line in enumerate(box.lines)]
        box.width = max(widths) + 2 * PAD_X
        box.height = len(box.lines) * line_height + 2 * PAD_Y

    def finish(self, xmin: float, xmax: float, ymin: float, ymax: float, title: str = "") -> Figure:
        """Size the figure to the drawing's extent plus a margin; centre `title` above it all."""
        if title:
            title_width, title_height = self.text_size(title, FONT_SIZE + 1, bold=True)
            centre = (xmin + xmax) / 2
            xmin, xmax = min(xmin, centre - title_width / 2), max(xmax, centre + title_width / 2)
            ymax += title_height + TITLE_GAP
            self.draw_text(centre, ymax, title, size=FONT_SIZE + 1, ha="center", va="top", fontweight="bold")
        # Whole 1/20 inches, so a whole number of pixels at 100, 200 or 300 dpi
        # (plus a hair, since matplotlib truncates 1039.9999 pixels to 1039).
        width = math.ceil((xmax - xmin + 2 * MARGIN) * 20) / 20 + 1e-9
        height = math.ceil((ymax - ymin + 2 * MARGIN) * 20) / 20 + 1e-9
        self.fig.set_size_inches(width, height)
        ax = self.fig.add_axes((0, 0, 1, 1))
        centre_x, centre_y = (xmin + xmax) / 2, (ymin + ymax) / 2
        ax.set_xlim(centre_x - width / 2, centre_x + width / 2)
        ax.set_ylim(centre_y - height / 2, centre_y + height / 2)
        ax.set_axis_off()
        for draw in self.artists:
            draw(ax)
        return self.fig

    # Each `draw_*` queues an artist; `finish` adds them once the axes exist.
    def draw_box(self, box: _Box) -> None:
        def draw(ax):
            colour = KIND_COLOURS[box.kind]
            ax.add_patch(
                FancyBboxPatch(
                    (box.x - box.width / 2, box.y - box.height / 2), box.width, box.height,
                    boxstyle="round,pad=0,rounding_size=0.06",
                    facecolor=tint(colour, 0.35), edgecolor=shade(colour, 0.8), linewidth=1.0,
                )
            )
            line_height = FONT_SIZE / 72 * LINE_SPACING
            top = box.y + (len(box.lines) - 1) * line_height / 2
            for i, line in enumerate(box.lines):
                ax.text(box.x, top - i * line_height, line, ha="center", va="center", fontsize=FONT_SIZE,
                        fontweight="bold" if box.bold_title and i == 0 else "normal", color="black")
            if box.side_label:
                ax.text(box.x - box.width / 2 - 0.08, box.y, box.side_label, ha="right", va="center",
                        fontsize=SMALL_FONT_SIZE, color="#555555")

        self.artists.append(draw)

    def draw_text(self, x: float, y: float, text: str, size: float = FONT_SIZE, colour: str = "black", **kwargs) -> None:
        self.artists.append(lambda ax: ax.text(x, y, text, fontsize=size, color=colour, **kwargs))

    def draw_arrow(self, points: Sequence[tuple[float, float]], head: bool = True) -> None:
        """A polyline through `points`, with an arrow head at the last one."""

        def draw(ax):
            xs, ys = zip(*points)
            if len(points) > 2:
                ax.plot(xs[:-1], ys[:-1], color="black", linewidth=1.0, solid_capstyle="butt")
            ax.add_patch(
                FancyArrowPatch(points[-2], points[-1], arrowstyle="-|>" if head else "-", mutation_scale=11,
                                color="black", linewidth=1.0, shrinkA=0, shrinkB=0)
            )

        self.artists.append(draw)

    def draw_dot(self, x: float, y: float) -> None:
        self.artists.append(lambda ax: ax.add_patch(Circle((x, y), 0.035, facecolor="black", edgecolor="none")))

    def draw_circle(self, x: float, y: float, radius: float, text: str) -> None:
        def draw(ax):
            ax.add_patch(Circle((x, y), radius, facecolor="white", edgecolor="black", linewidth=1.0))
            ax.text(x, y, text, ha="center", va="center", fontsize=FONT_SIZE + 3, fontweight="bold")

        self.artists.append(draw)


def _stack(boxes: Sequence[_Box], x: float, top: float, gap: float) -> float:
    """Place `boxes` in a column centred on `x`, from `top` down; return the bottom."""
    y = top
    for box in boxes:
        box.x, box.y = x, y - box.height / 2
        y -= box.height + gap
    return y + gap


# ---------------------------------------------------------------- Fig 2


def draw_architecture(
    model: nn.Module, input_shape: Sequence[int] = IMAGE_SHAPE, title: str | None = None
) -> Figure:
    """A top-to-bottom block diagram of `model`: one box per top-level child.

    Each box shows the child's name and what it is (read from its modules);
    the arrow below it carries the child's output shape from a traced
    forward pass. `title=None` names the model and its parameter count;
    `title=""` leaves the title out (for a report with its own caption).
    """
    with matplotlib.rc_context(STYLE):
        trace = trace_model(model, input_shape).iloc[1:]  # the first row is the input
        children = dict(model.named_children())
        canvas = _Canvas()
        boxes = []
        for row in trace.itertuples():
            module = children[row.stage]
            description = describe_module(module, short=True)
            lines = [row.stage] if description == row.stage else [row.stage, *canvas.wrap(description)]
            boxes.append(_Box(lines, _kind(module), extra={"shape": row.output_shape}))
        for box in boxes:
            canvas.size_box(box)
        width = max(box.width for box in boxes)
        for box in boxes:
            box.width = width
        _, text_height = canvas.text_size("Xg")
        gap, label_gap = 0.42, 0.06

        top = 0.0
        canvas.draw_text(0, top, f"input {format_shape(input_shape[1:])}", ha="center", va="top")
        top -= text_height + label_gap
        canvas.draw_arrow([(0, top), (0, top - gap)])
        bottom = _stack(boxes, 0.0, top - gap, gap)
        for upper, lower in zip(boxes, boxes[1:]):
            canvas.draw_arrow([(0, upper.y - upper.height / 2), (0, lower.y + lower.height / 2)])
            canvas.draw_text(0.1, upper.y - upper.height / 2 - gap / 2, upper.extra["shape"],
                             size=SMALL_FONT_SIZE, colour="#333333", ha="left", va="center")
        canvas.draw_arrow([(0, bottom), (0, bottom - gap)])
        canvas.draw_text(0, bottom - gap - label_gap, f"{boxes[-1].extra['shape']} class scores", ha="center", va="top")
        bottom -= gap + label_gap + text_height
        for box in boxes:
            canvas.draw_box(box)

        half = max(width / 2 + 0.1 + canvas.text_size(b.extra["shape"], SMALL_FONT_SIZE)[0] for b in boxes)
        if title is None:
            title = f"{type(model).__name__} ({count_parameters(model):,} parameters)"
        return canvas.finish(-half, half, bottom, 0.0, title)


def draw_custom_resnet(model: nn.Module, input_shape: Sequence[int] = IMAGE_SHAPE, title: str | None = None) -> Figure:
    """Fig 2: the Custom ResNet, stem to classifier, with each stage's output shape."""
    return draw_architecture(model, input_shape, title)


def custom_resnet_to_draw(architecture: Mapping[str, Any] | None = None) -> nn.Module:
    """The Custom ResNet that Fig 2 and Fig 3 draw (notebook 04, the written report): built with `architecture`,
    the options a run recorded (None: the factory's defaults), under seed 23, so that every call gives the same
    module; the drawings read only its structure."""
    torch.manual_seed(23)
    return build_model("custom_resnet", **(architecture or {}))


# ---------------------------------------------------------------- Fig 3


def _is_add(node: torch.fx.Node) -> bool:
    return (node.op == "call_function" and node.target in (operator.add, operator.iadd, torch.add)) or (
        node.op == "call_method" and node.target in ("add", "add_")
    )


def _chain_back(node: torch.fx.Node) -> list[torch.fx.Node]:
    """The ops from the block's input up to `node`, following each op's first tensor input."""
    chain = []
    while node.op != "placeholder":
        chain.append(node)
        node = node.all_input_nodes[0]
    return chain[::-1]


def _residual_paths(block: nn.Module) -> tuple[list, list, list]:
    """(main branch, skip branch, ops after the add) as fx nodes, from the block's forward."""
    graph = torch.fx.symbolic_trace(block).graph
    adds = [n for n in graph.nodes if _is_add(n)]
    if len(adds) != 1:
        raise ValueError(
            f"draw_bottleneck_block: expected one residual addition in {type(block).__name__}.forward, found {len(adds)}"
        )
    add = adds[0]
    branches = sorted((_chain_back(arg) for arg in add.all_input_nodes), key=len, reverse=True)
    main, skip = branches[0], branches[1] if len(branches) > 1 else []
    after, node = [], add
    while len(node.users) == 1:
        (node,) = node.users
        if node.op == "output":
            break
        after.append(node)
    return main, skip, after


def _op_boxes(block: nn.Module, nodes: Sequence[torch.fx.Node]) -> list[_Box]:
    """One box per op; identity modules (a missing norm, a plain shortcut) are left out."""
    boxes = []
    for node in nodes:
        if node.op == "call_module":
            module = block.get_submodule(node.target)
            if not isinstance(module, nn.Identity):
                boxes.append(_Box([describe_module(module)], _kind(module), bold_title=False, side_label=node.target))
        else:
            name = getattr(node.target, "__name__", str(node.target)).rstrip("_")
            label = {"relu": "ReLU", "gelu": "GELU", "sigmoid": "Sigmoid"}.get(name, name)
            boxes.append(_Box([label], "activation" if label != name else "other", bold_title=False))
    return boxes


def _block_title(block: nn.Module, in_channels: int, out_channels: int, stride: int) -> str:
    name = type(block).__name__
    name = name if name.lower().endswith("block") else f"{name} block"
    return f"{name}: {in_channels}→{out_channels} channels" + (f", stride {stride}" if stride > 1 else "")


def draw_bottleneck_block(block: nn.Module, title: str | None = None) -> Figure:
    """Fig 3: a residual block's ops top to bottom, with its skip connection.

    The main branch, the skip branch (a projection when the block has one,
    else the identity) and the ops after the addition are read from the
    block's forward pass with torch.fx; labels come from the modules. Works
    for any block whose forward adds one skip connection (BasicBlock too).
    `title=""` leaves the title out.
    """
    with matplotlib.rc_context(STYLE):
        main_nodes, skip_nodes, after_nodes = _residual_paths(block)
        convs = [m for m in (block.get_submodule(n.target) for n in main_nodes if n.op == "call_module")
                 if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError(f"draw_bottleneck_block: {type(block).__name__} has no convolution on its main branch")
        in_channels, out_channels = convs[0].in_channels, convs[-1].out_channels
        stride = max(max(c.stride) for c in convs)

        canvas = _Canvas()
        main, skip, after = (_op_boxes(block, nodes) for nodes in (main_nodes, skip_nodes, after_nodes))
        for box in main + skip + after:
            canvas.size_box(box)
        width = max(box.width for box in main + after)
        for box in main + after:
            box.width = width
        skip_width = max((box.width for box in skip), default=0.0)
        for box in skip:
            box.width = skip_width
        _, text_height = canvas.text_size("Xg")
        gap, arrow, label_gap, radius = 0.2, 0.3, 0.06, 0.15

        # Main column at x = 0: input, main branch, add, ops after the add, output.
        top = 0.0
        canvas.draw_text(0, top, f"input, {in_channels} channels", ha="center", va="top")
        top -= text_height + label_gap
        split_y = top - arrow / 2
        canvas.draw_arrow([(0, top), (0, top - arrow)])
        main_bottom = _stack(main, 0.0, top - arrow, gap)
        add_y = main_bottom - arrow - radius
        canvas.draw_arrow([(0, main_bottom), (0, add_y + radius)])
        canvas.draw_circle(0, add_y, radius, "+")
        after_bottom = _stack(after, 0.0, add_y - radius - arrow, gap)
        canvas.draw_arrow([(0, add_y - radius), (0, add_y - radius - arrow)])
        for column in (main, after):
            for upper, lower in zip(column, column[1:]):
                canvas.draw_arrow([(0, upper.y - upper.height / 2), (0, lower.y + lower.height / 2)])
        canvas.draw_arrow([(0, after_bottom), (0, after_bottom - arrow)])
        canvas.draw_text(0, after_bottom - arrow - label_gap, f"output, {out_channels} channels", ha="center", va="top")
        bottom = after_bottom - arrow - label_gap - text_height

        # The skip connection, right of the main column: from the split to the add.
        skip_label = "projection shortcut" if skip else "identity shortcut"
        label_width = canvas.text_size(skip_label, SMALL_FONT_SIZE)[0]
        skip_x = width / 2 + 0.35 + (max(skip_width, label_width) / 2 if skip else 0.0)
        canvas.draw_dot(0, split_y)
        if skip:
            stack_height = sum(b.height for b in skip) + gap * (len(skip) - 1)
            skip_top = (split_y + add_y + stack_height) / 2
            skip_bottom = _stack(skip, skip_x, skip_top, gap)
            canvas.draw_arrow([(0, split_y), (skip_x, split_y), (skip_x, skip_top)])
            for upper, lower in zip(skip, skip[1:]):
                canvas.draw_arrow([(skip_x, upper.y - upper.height / 2), (skip_x, lower.y + lower.height / 2)])
            canvas.draw_arrow([(skip_x, skip_bottom), (skip_x, add_y), (radius, add_y)])
            canvas.draw_text(skip_x - 0.1, split_y + 0.05, skip_label, size=SMALL_FONT_SIZE, colour="#333333",
                             ha="right", va="bottom", style="italic")
            right = skip_x + max(b.width / 2 + 0.08 + canvas.text_size(b.side_label, SMALL_FONT_SIZE)[0] for b in skip)
        else:
            canvas.draw_arrow([(0, split_y), (skip_x, split_y), (skip_x, add_y), (radius, add_y)])
            canvas.draw_text(skip_x + 0.08, (split_y + add_y) / 2, skip_label, size=SMALL_FONT_SIZE, colour="#333333",
                             ha="left", va="center", style="italic")
            right = skip_x + 0.08 + label_width
        for box in main + after:
            canvas.draw_box(box)
        for box in skip:  # module names go right of the skip column
            canvas.draw_text(skip_x + box.width / 2 + 0.08, box.y, box.side_label, size=SMALL_FONT_SIZE,
                             colour="#555555", ha="left", va="center")
            box.side_label = ""
            canvas.draw_box(box)

        left = max(width / 2 + 0.08 + canvas.text_size(b.side_label, SMALL_FONT_SIZE)[0] for b in main + after)
        if title is None:
            title = _block_title(block, in_channels, out_channels, stride)
        return canvas.finish(-left, right, bottom, 0.0, title)
