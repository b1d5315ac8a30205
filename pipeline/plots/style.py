"""One figure style for every plot, plus helpers shared by the figure modules.

Figure functions are pure: data in, :class:`matplotlib.figure.Figure` out. They build figures
with :func:`new_figure` (which applies :data:`RC_PARAMS` without touching the global pyplot
state) and record every number they print on the figure with :func:`record`, so tests and the
report can check the figure against the data it was made from (:func:`annotations_of`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")

import matplotlib as mpl  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.axis import Axis  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.rcsetup import cycler  # noqa: E402

from pipeline.fileio import atomic_path  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

RC_PARAMS: dict[RcKeyType, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 9.0,
    "axes.titleweight": "normal",
    "axes.labelsize": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "axes.prop_cycle": cycler(color=[
        "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
        "#000000"]),
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "lines.linewidth": 1.3,
    "figure.dpi": 100,
    "savefig.dpi": 110,
    # No "savefig.bbox: tight": the constrained layout already fits every label, and the tight
    # box costs one more full draw per figure (a third of the figures step on the demo study).
    "svg.fonttype": "none",  # keep text as text in SVG (searchable, testable)
    "figure.titlesize": 11.0,
    "figure.titleweight": "bold",
}

# Semantic colours used across figures (Okabe-Ito, colour-blind safe).
COLORS = {
    "reference": "#000000",   # measured / inverse dynamics / recorded
    "predicted": "#D55E00",   # model output
    "initial": "#7f7f7f",
    "calibrated": "#0072B2",
    "flag": "#CC0000",        # at bound, over threshold
    "poorly_identified": "#E69F00",
    "band": "#009E73",        # allowed range (penalty band)
    "synthesised": "#CC79A7",
}
METHOD_COLORS = {"gradient": "#0072B2", "annealing": "#E69F00", "synergy_hybrid": "#009E73",
                 "motion": "#CC79A7"}
ANNOTATIONS_ATTR = "pipeline_annotations"
PANEL_WIDTH_IN = 3.2
PANEL_HEIGHT_IN = 2.1


def new_figure(n_rows: int = 1, n_cols: int = 1, *, panel_width_in: float = PANEL_WIDTH_IN,
               panel_height_in: float = PANEL_HEIGHT_IN, squeeze: bool = False,
               **subplot_kw: Any) -> tuple[Figure, Any]:
    """A styled figure with an ``(n_rows, n_cols)`` grid of axes (a 2-D array unless squeeze).

    The figure is not registered with pyplot, so nothing leaks between calls.
    """
    width, height = panel_width_in * n_cols + 0.6, panel_height_in * n_rows + 0.7
    with mpl.rc_context(RC_PARAMS):
        fig = Figure(figsize=(width, height), layout="constrained")
        # The constrained layout places the axes; these parameters only give them about their
        # final size before it runs, which is when their ticks are chosen (see pinned_ticks).
        fig.subplotpars.update(left=0.3 / width, right=1 - 0.3 / width, bottom=0.7 / height,
                               top=1 - 0.7 / height, wspace=0.05, hspace=0.4)
        axes = fig.subplots(n_rows, n_cols, squeeze=squeeze, **subplot_kw)
    setattr(fig, ANNOTATIONS_ATTR, {})
    return fig, axes


def styled(fn):
    """Decorator: run a figure function inside the style's rc context (ticks, fonts, cycles)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with mpl.rc_context(RC_PARAMS):
            return fn(*args, **kwargs)
    return wrapper


def record(fig: Figure, key: str, value: Any) -> None:
    """Record a number (or small structure) that the figure shows, under ``key``."""
    getattr(fig, ANNOTATIONS_ATTR)[key] = value


def annotations_of(fig: Figure) -> dict[str, Any]:
    """Numbers recorded by :func:`record` (a copy)."""
    return dict(getattr(fig, ANNOTATIONS_ATTR, {}))


def fmt(value: float | None, digits: int = 3) -> str:
    """Format a number for a panel label with ``digits`` significant digits ('n/a' if missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}g}"


def grid_shape(n: int, *, max_cols: int = 4) -> tuple[int, int]:
    """Rows and columns for ``n`` panels, at most ``max_cols`` wide."""
    n_cols = max(1, min(max_cols, n))
    return math.ceil(max(n, 1) / n_cols), n_cols


def hide_unused(axes: Any, n_used: int) -> None:
    """Hide the panels after the first ``n_used`` in a grid of axes."""
    for ax in list(axes.flat)[n_used:]:
        ax.set_visible(False)


def label_bottom_panels(axes: Any, xlabel: str) -> None:
    """Put x tick labels and ``xlabel`` on the lowest visible panel of every column (a shared
    x axis hides them on panels above a hidden one otherwise)."""
    for col in range(axes.shape[1]):
        visible = [ax for ax in axes[:, col] if ax.get_visible()]
        if visible:
            visible[-1].xaxis.set_tick_params(labelbottom=True)
            visible[-1].set_xlabel(xlabel)


def empty_panel(ax: Any, message: str) -> None:
    """Say why a panel has no data instead of leaving it blank."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes,
            color="#555555", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _pin_axis(axis: Axis) -> tuple[Axis, tuple] | None:
    """Replace ``axis``'s automatic ticks by the ones they give now; return what to restore.

    Only a linear axis with matplotlib's default locator is pinned (fixed ticks, category,
    log and date axes keep theirs). The labels come from the axis's own formatter; when it
    prints an offset or a power of ten (``1e3``) it is kept, so that text still shows.
    """
    locator, formatter = axis.get_major_locator(), axis.get_major_formatter()
    if type(locator) is not ticker.AutoLocator or axis.get_scale() != "linear":
        return None
    defaults = axis.isDefault_majloc, axis.isDefault_majfmt
    locs = np.asarray(locator(), dtype=float)
    labels = formatter.format_ticks(locs.tolist())
    # The ticks matplotlib would draw: those inside the view interval (the locator also
    # returns one beyond each end), with its tolerance for a tick on an edge.
    low, high = sorted(axis.get_view_interval())
    tol = 1e-10 * (high - low)
    keep = [i for i, loc in enumerate(locs) if low - tol <= loc <= high + tol]
    axis.set_major_locator(ticker.FixedLocator(locs[keep].tolist()))
    if isinstance(formatter, ticker.ScalarFormatter) and not formatter.get_offset():
        axis.set_major_formatter(ticker.FixedFormatter([labels[i] for i in keep]))
    return axis, (locator, formatter, defaults)


@contextmanager
def pinned_ticks(fig: Figure) -> Iterator[None]:
    """Compute every axis's ticks once, for a whole save, and put the locators back after.

    matplotlib recomputes the tick positions and labels of every axis each time it needs the
    axis's size: several times per axes in each constrained-layout pass and again when
    drawing, which was most of the figures step. Pinned before the layout, they are computed
    once, for the axes' size before the layout (about the final size, see new_figure; the
    layout then makes room for those labels).
    """
    pinned = [entry for ax in fig.axes if ax.get_visible()
              for entry in (_pin_axis(ax.xaxis), _pin_axis(ax.yaxis)) if entry is not None]
    try:
        yield
    finally:
        for axis, (locator, formatter, defaults) in pinned:
            axis.set_major_locator(locator)
            axis.set_major_formatter(formatter)
            axis.isDefault_majloc, axis.isDefault_majfmt = defaults


@contextmanager
def laid_out(fig: Figure, fmt: str) -> Iterator[None]:
    """Run the figure's layout engine once, now, and leave it off until the block ends.

    With a layout engine, ``savefig`` draws the whole figure once (output off) only to run the
    layout, then draws it again to save it. Running the layout here, at the resolution the
    figure is saved at, skips that first draw. Only for PNG (a vector format lays text out at
    its own resolution, so it keeps matplotlib's way).
    """
    engine = fig.get_layout_engine()
    if engine is None or fmt != "png":
        yield
        return
    dpi = fig.dpi
    save_dpi = mpl.rcParams["savefig.dpi"]
    fig.dpi = dpi if save_dpi == "figure" else float(save_dpi)
    try:
        engine.execute(fig)
    finally:
        fig.dpi = dpi
    with mpl.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
        fig.set_layout_engine(None)
    try:
        yield
    finally:
        fig.set_layout_engine(engine)


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` to ``path`` atomically; the format follows the suffix (``.png``/``.svg``)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    with (mpl.rc_context(RC_PARAMS), pinned_ticks(fig), laid_out(fig, fmt),
          atomic_path(path) as tmp):
        fig.savefig(tmp, format=fmt)
    return path
