"""One look for every figure, and one way to save them.

- `OKABE_ITO`: the Okabe-Ito colours, safe for colour-blind readers.
- `STYLE`: matplotlib settings sized for a printed report, applied per figure
  with `matplotlib.rc_context(STYLE)` so a notebook's own plots keep theirs.
- `save_figure(fig, "figures/fig2")`: writes fig2.png (raster, >= 200 dpi)
  and fig2.pdf (vector), each atomically and with fixed metadata, so that
  re-running a notebook rewrites identical bytes.
- `save_and_show(fig, "fig2_custom_resnet", FIGURES_DIR)`: the same into a
  notebook's figures folder (None: <repo>/figures), returning `fig` to show.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from cifar_helpers.core.files import atomic_path, remove_leftovers
from cifar_helpers.core.paths import repo_path

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "grey": "#999999",
}

# Colour cycle for curves: the order keeps neighbours far apart in hue.
COLOUR_CYCLE = [OKABE_ITO[k] for k in ("blue", "orange", "bluish_green", "vermillion", "reddish_purple", "sky_blue", "yellow", "black")]

# One colour and line style per model, where several models share a plot: model i (models.specs order, further
# models after the report's four) takes MODEL_COLOURS[i % 7] and MODEL_LINESTYLES[i % 4]. 7 and 4 share no
# factor, so the first 28 models each get a pair of their own, and the palette never runs out. The first four
# pairs are the report's models' (DNN, CNN, ResNet, Custom ResNet), as the committed figures show them.
# The fifth (a first model of one's own) shares the DNN's dotted line, so it takes the hue farthest from its orange.
MODEL_COLOURS = tuple(OKABE_ITO[k] for k in ("orange", "sky_blue", "bluish_green", "blue", "reddish_purple",
                                              "vermillion", "black"))
MODEL_LINESTYLES = (":", "-.", "--", "-")


def model_style(index: int) -> tuple[str, str]:
    """(colour, line style) of the model at `index` in the order figures list models."""
    return MODEL_COLOURS[index % len(MODEL_COLOURS)], MODEL_LINESTYLES[index % len(MODEL_LINESTYLES)]

# Figures are drawn at their printed size: PAGE_WIDTH is a 16 cm column, and the
# fonts are 7.5-9 pt there. In a notebook they show at INLINE_DPI, which makes a
# full-width figure about 950 px wide: JupyterLab shows it without shrinking.
PAGE_WIDTH = 6.3  # inches
INLINE_DPI = 150

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.5,
    "axes.prop_cycle": matplotlib.cycler(color=COLOUR_CYCLE),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.3,
    "figure.dpi": INLINE_DPI,
    "savefig.dpi": 200,
    # TrueType in the PDF: text stays text (selectable, editable).
    "pdf.fonttype": 42,
}

MIN_DPI = 200
FORMATS = ("png", "pdf")
# Fixed metadata: no creation date and no version strings, so bytes repeat.
_METADATA = {
    "png": {"Software": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
}


def tint(colour: str, amount: float = 0.3) -> tuple[float, float, float]:
    """`colour` mixed with white: `amount` 1 is the colour itself, 0 is white."""
    return tuple(1 - amount * (1 - c) for c in to_rgb(colour))


def shade(colour: str, amount: float = 0.75) -> tuple[float, float, float]:
    """`colour` mixed with black: `amount` 1 is the colour itself, 0 is black."""
    return tuple(amount * c for c in to_rgb(colour))


def save_figure(
    fig: Figure,
    path_without_suffix: str | os.PathLike,
    dpi: int = MIN_DPI,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Write `fig` as <path>.png and <path>.pdf; return the paths written.

    A trailing .png or .pdf on the path is dropped. Each file is written to a
    temporary name and renamed into place, so a crash leaves no half-file; the
    temporary files that saves killed midway left in the folder are removed.
    """
    if dpi < MIN_DPI:
        raise ValueError(f"save_figure: dpi={dpi} is below the report's minimum of {MIN_DPI}")
    unknown = [f for f in formats if f not in _METADATA]
    if unknown:
        raise ValueError(f"save_figure: unsupported format(s) {unknown}; choose from {list(_METADATA)}")
    base = Path(path_without_suffix)
    if base.suffix.lower() in (".png", ".pdf"):
        base = base.with_suffix("")
    remove_leftovers(base.parent)
    written = []
    for fmt in formats:
        target = base.with_name(f"{base.name}.{fmt}")
        with atomic_path(target) as tmp:
            # The temporary name ends in .tmp: the format must be explicit.
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
        written.append(target)
    return written


def save_and_show(fig: Figure | None, name: str, figures_dir: str | os.PathLike | None = None) -> Figure | None:
    """Write `fig` as <figures_dir>/<name>.png and .pdf and return it, for the notebook cell to show.

    `figures_dir` is a notebook's FIGURES_DIR: relative to the repository, None for <repo>/figures. A cell
    that has no figure to show (None) writes nothing and shows nothing."""
    if fig is not None:
        save_figure(fig, repo_path(figures_dir, "figures") / name)
    return fig
