"""Experimental-data figures: IK marker errors and ground reaction forces / centre of pressure."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from matplotlib.artist import Artist
from matplotlib.figure import Figure

from pipeline.plots.data import Signals, TrialRecording
from pipeline.plots.style import COLORS, empty_panel, new_figure, record, styled

MM_PER_M = 1000.0
_FORCE = re.compile(r"^(?P<pre>.*?)force(?P<mid>_.+?)?_v(?P<axis>[xyz])$")
_COP = re.compile(r"^(?P<pre>.*?)force(?P<mid>_.+?)?_p(?P<axis>[xyz])$")
AXIS_COLOR = {"x": "#0072B2", "y": "#000000", "z": "#D55E00"}
PLATE_STYLE = ("-", "--", ":", "-.")
SIDE_NAMES = {"l": "left", "r": "right"}
# OpenSim's +z points to the subject's right: lateral for the right foot, medial for the left.
AXIS_NAME = {"x": "anterior (x)", "y": "vertical (y)", "z": "to the right (z)"}


def _plate_label(pre: str, mid: str | None) -> str:
    label = "_".join(p for p in (pre.replace("ground", "").strip("_"), (mid or "").strip("_"))
                     if p)
    return SIDE_NAMES.get(label, label) or "plate"


def grf_columns(grf: Signals) -> dict[str, dict[str, dict[str, str]]]:
    """Group OpenSim GRF ``.mot`` columns by plate: {plate: {"force"|"cop": {axis: column}}}.

    Handles ``ground_force_vx``, ``1_ground_force_vx``, ``ground_force_r_vx`` and similar.
    """
    plates: dict[str, dict[str, dict[str, str]]] = {}
    for column in grf.names:
        for kind, pattern in (("force", _FORCE), ("cop", _COP)):
            match = pattern.match(column)
            if match:
                plate = _plate_label(match["pre"], match["mid"])
                plates.setdefault(plate, {"force": {}, "cop": {}})[kind][match["axis"]] = column
    return plates


@styled
def marker_error_figure(trials: Sequence[TrialRecording], *,
                        max_rms_error_m: float | None = None) -> Figure:
    """IK marker errors over time per trial: RMS (left) and maximum (right), in mm.

    ``max_rms_error_m`` draws the configured RMS threshold. Records ``"<trial>/mean_rms_m"`` and
    ``"<trial>/max_m"``.
    """
    fig, axes = new_figure(1, 2, panel_width_in=3.9, panel_height_in=2.6)
    shown = [t for t in trials if t.marker_errors is not None]
    if not shown:
        for ax in axes[0]:
            empty_panel(ax, "no IK marker-error files")
        return fig
    rms_ax, max_ax = axes[0]
    for i, trial in enumerate(shown):
        errors = trial.marker_errors
        rms = errors.get("marker_error_RMS")  # type: ignore[union-attr]
        peak = errors.get("marker_error_max")  # type: ignore[union-attr]
        label = f"{trial.name} ({trial.role})"
        if rms is not None:
            rms_ax.plot(errors.time_s, rms * MM_PER_M, color=f"C{i % 8}",  # type: ignore
                        label=label)
            record(fig, f"{trial.name}/mean_rms_m", float(np.nanmean(rms)))
        if peak is not None:
            max_ax.plot(errors.time_s, peak * MM_PER_M, color=f"C{i % 8}",  # type: ignore
                        label=label)
            record(fig, f"{trial.name}/max_m", float(np.nanmax(peak)))
    if max_rms_error_m is not None:
        rms_ax.axhline(max_rms_error_m * MM_PER_M, color=COLORS["flag"], linestyle="--",
                       linewidth=1.0, label=f"threshold {max_rms_error_m * MM_PER_M:g} mm")
    rms_ax.set_title("RMS marker error per frame")
    max_ax.set_title("largest marker error per frame")
    for ax in axes[0]:
        ax.set_xlabel("time (s)")
        ax.set_ylabel("error (mm)")
        ax.margins(y=0.12)
        ax.set_ylim(bottom=0)
        if not ax.lines:
            empty_panel(ax, "column missing from the marker-error files")
    handles, labels = rms_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4))
    fig.suptitle("Inverse-kinematics marker errors", x=0.02, ha="left")
    return fig


@styled
def grf_figure(trials: Sequence[TrialRecording]) -> Figure:
    """Ground reaction force components (left) and centre of pressure (right), one row per
    trial, one colour per plate. Records ``"<trial>/<plate>/peak_vertical_n"``.
    """
    shown = [t for t in trials if t.grf is not None and grf_columns(t.grf)]
    fig, axes = new_figure(max(len(shown), 1), 2, panel_width_in=3.9, panel_height_in=2.2,
                           sharex="row")
    if not shown:
        for ax in axes[0]:
            empty_panel(ax, "no ground reaction forces (no force plates)")
        return fig
    for row, trial in enumerate(shown):
        grf: Signals = trial.grf  # type: ignore[assignment]
        force_ax, cop_ax = axes[row]
        for i, (plate, columns) in enumerate(sorted(grf_columns(grf).items())):
            style = PLATE_STYLE[i % len(PLATE_STYLE)]
            for axis, column in sorted(columns["force"].items()):
                force_ax.plot(grf.time_s, grf.column(column), color=AXIS_COLOR[axis],
                              linestyle=style, label=f"{plate}: {AXIS_NAME[axis]}")
            if "y" in columns["force"]:
                peak = float(np.nanmax(grf.column(columns["force"]["y"])))
                record(fig, f"{trial.name}/{plate}/peak_vertical_n", peak)
            loaded = np.ones(len(grf.time_s), dtype=bool)
            if "y" in columns["force"]:
                loaded = np.abs(grf.column(columns["force"]["y"])) > 0  # COP is 0 when unloaded
            for axis, column in sorted(columns["cop"].items()):
                if axis == "y":
                    continue  # COP height is the plate surface: constant
                cop = np.where(loaded, grf.column(column), np.nan)
                cop_ax.plot(grf.time_s, cop, color=AXIS_COLOR[axis], linestyle=style,
                            label=f"{plate}: {AXIS_NAME[axis]}")
        force_ax.set_title(f"{trial.name} ({trial.role}): ground reaction force")
        cop_ax.set_title(f"{trial.name} ({trial.role}): centre of pressure")
        force_ax.set_ylabel("force (N)")
        cop_ax.set_ylabel("COP (m, lab)")
        for ax in (force_ax, cop_ax):
            if not ax.lines:
                empty_panel(ax, "no columns")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    labels: dict[str, Artist] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            labels.setdefault(label, handle)
    fig.legend(list(labels.values()), list(labels), loc="outside lower center",
               ncols=min(len(labels), 4))
    fig.suptitle("Ground reaction forces and centre of pressure", x=0.02, ha="left")
    return fig
