"""Muscle-level figures: excitations vs activations, forces, normalised fibre-length ranges."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pipeline.plots.data import Signals, TrialResult
from pipeline.plots.style import (
    COLORS,
    annotations_of,
    empty_panel,
    grid_shape,
    hide_unused,
    label_bottom_panels,
    new_figure,
    record,
    styled,
)


def _mtu_names(*signals: Signals | None) -> list[str]:
    names: list[str] = []
    for sig in signals:
        if sig is not None:
            names += [n for n in sig.names if n not in names]
    return names


@styled
def excitation_activation_figure(trial: TrialResult, *, method: str = "") -> Figure:
    """Recorded excitations vs model activations of one trial, one panel per MTU.

    MTUs without EMG show the synthesised excitation (synergy-hybrid) when there is one.
    Records ``"<mtu>/source"`` (recorded | synthesised | none) and ``"<mtu>/peak_activation"``.
    """
    mtus = _mtu_names(trial.excitations, trial.activations, trial.synthesised_excitations)
    n_rows, n_cols = grid_shape(len(mtus))
    fig, axes = new_figure(n_rows, n_cols, panel_width_in=2.7, panel_height_in=1.8,
                           sharex=True, sharey=True)
    if not mtus:
        empty_panel(axes[0, 0], f"{trial.name}: no excitations or activations")
        return fig
    for ax, mtu in zip(axes.flat, mtus, strict=False):
        source = "none"
        if trial.excitations is not None and trial.excitations.has_data(mtu):
            ax.plot(trial.excitations.time_s, trial.excitations.get(mtu),
                    color=COLORS["reference"], linewidth=1.0)
            source = "recorded"
        elif trial.synthesised_excitations is not None and \
                trial.synthesised_excitations.has_data(mtu):
            ax.plot(trial.synthesised_excitations.time_s, trial.synthesised_excitations.get(mtu),
                    color=COLORS["synthesised"], linestyle="--", linewidth=1.0)
            source = "synthesised"
        if trial.activations is not None and trial.activations.has_data(mtu):
            activation = trial.activations.column(mtu)
            ax.plot(trial.activations.time_s, activation, color=COLORS["predicted"])
            record(fig, f"{mtu}/peak_activation", float(np.nanmax(activation)))
        note = {"recorded": "", "synthesised": " (synthesised)", "none": " (no EMG)"}[source]
        # y=1: the panel's place for a title when nothing sits above the axes, which holds here
        # (fixed 0-1 ticks: no offset text); matplotlib's automatic placement would find the
        # same place after measuring the y axis again, per panel and per layout pass.
        ax.set_title(f"{mtu}{note}", y=1.0)
        record(fig, f"{mtu}/source", source)
    # One call for all panels (they share y), with the 0-1 ticks of a normalised signal.
    axes[0, 0].set_ylim(-0.02, 1.02)
    axes[0, 0].set_yticks(np.linspace(0.0, 1.0, 6))
    hide_unused(axes, len(mtus))
    label_bottom_panels(axes, "time (s)")
    for ax in axes[:, 0]:
        ax.set_ylabel("excitation / activation")
    legend = [Line2D([], [], color=COLORS["reference"], label="recorded excitation (EMG)"),
              Line2D([], [], color=COLORS["predicted"], label="model activation")]
    if "synthesised" in annotations_of(fig).values():
        legend.insert(1, Line2D([], [], color=COLORS["synthesised"], linestyle="--",
                                label="synthesised excitation"))
    fig.legend(handles=legend, loc="outside lower center", ncols=3)
    fig.suptitle(f"Excitations and activations — {trial.name} ({trial.role})"
                 f"{f', {method}' if method else ''}", x=0.02, ha="left")
    return fig


@styled
def muscle_force_figure(trials: Sequence[TrialResult], *, method: str = "") -> Figure:
    """Predicted MTU forces, one panel per MTU, one line per trial.

    Records ``"<mtu>/peak_force_n"`` (over all trials).
    """
    with_forces = [t for t in trials if t.forces is not None]
    mtus = _mtu_names(*(t.forces for t in with_forces))
    n_rows, n_cols = grid_shape(len(mtus))
    fig, axes = new_figure(n_rows, n_cols, panel_width_in=2.7, panel_height_in=1.8,
                           sharex=True)
    if not mtus:
        empty_panel(axes[0, 0], "no predicted forces")
        return fig
    for ax, mtu in zip(axes.flat, mtus, strict=False):
        peak = 0.0
        for i, trial in enumerate(with_forces):
            force = trial.forces.get(mtu)  # type: ignore[union-attr]
            if force is None:
                continue
            ax.plot(trial.forces.time_s, force, color=f"C{i % 8}",  # type: ignore[union-attr]
                    label=f"{trial.name} ({trial.role})")
            peak = max(peak, float(np.nanmax(force)))
        ax.set_title(f"{mtu} (peak {peak:.0f} N)")
        record(fig, f"{mtu}/peak_force_n", peak)
    hide_unused(axes, len(mtus))
    label_bottom_panels(axes, "time (s)")
    for ax in axes[:, 0]:
        ax.set_ylabel("force (N)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4))
    fig.suptitle(f"Muscle-tendon forces{f' — {method}' if method else ''}", x=0.02, ha="left")
    return fig


@styled
def fiber_length_figure(trials: Sequence[TrialResult], *, band: tuple[float, float],
                        method: str = "") -> Figure:
    """Range (min to max) of normalised fibre length per MTU and trial vs the penalty band.

    ``band`` is the (lower, upper) normalised fibre length outside which calibration is
    penalised. Records ``"<mtu>/min"``, ``"<mtu>/max"`` (over trials) and ``"band"``.
    """
    with_lengths = [t for t in trials if t.fiber_lengths is not None]
    mtus = _mtu_names(*(t.fiber_lengths for t in with_lengths))
    fig, axes = new_figure(1, 1, panel_width_in=6.5,
                           panel_height_in=max(2.0, 0.32 * len(mtus) + 0.8))
    ax = axes[0, 0]
    record(fig, "band", [float(band[0]), float(band[1])])
    if not mtus:
        empty_panel(ax, "no fibre lengths")
        return fig
    n = len(with_lengths)
    offsets = np.linspace(-0.3, 0.3, n) if n > 1 else np.zeros(1)
    ax.axvspan(band[0], band[1], color=COLORS["band"], alpha=0.12, zorder=0)
    for edge in band:
        ax.axvline(edge, color=COLORS["band"], linestyle="--", linewidth=1.0)
    ax.axvline(1.0, color="#999999", linewidth=0.8)
    lowest, highest = float(band[0]), float(band[1])
    for y, mtu in enumerate(mtus):
        mins, maxs = [], []
        for i, trial in enumerate(with_lengths):
            length = trial.fiber_lengths.get(mtu)  # type: ignore[union-attr]
            if length is None or not np.isfinite(length).any():
                continue
            lo, hi = float(np.nanmin(length)), float(np.nanmax(length))
            mins.append(lo)
            maxs.append(hi)
            outside = lo < band[0] or hi > band[1]
            ax.plot([lo, hi], [y + offsets[i]] * 2, color=f"C{i % 8}", linewidth=3.5,
                    marker="|", markersize=8, markeredgewidth=2, solid_capstyle="butt",
                    label=f"{trial.name} ({trial.role})" if y == 0 else None)
            if outside:
                ax.plot([lo, hi], [y + offsets[i]] * 2, "|", color=COLORS["flag"], markersize=10,
                        markeredgewidth=2)
        if mins:
            record(fig, f"{mtu}/min", min(mins))
            record(fig, f"{mtu}/max", max(maxs))
            lowest, highest = min(lowest, min(mins)), max(highest, max(maxs))
    ax.set_yticks(range(len(mtus)), mtus)
    ax.set_ylim(len(mtus) - 0.5, -0.5)
    ax.set_xlim(lowest - 0.05, highest + 0.05)
    ax.set_xlabel("normalised fibre length (fibre length / optimal fibre length)")
    ax.grid(axis="y", visible=False)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color=COLORS["band"], linestyle="--"))
    labels.append(f"penalty band [{band[0]:g}, {band[1]:g}]")
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4))
    fig.suptitle(f"Normalised fibre-length ranges{f' — {method}' if method else ''}", x=0.02,
                 ha="left")
    return fig
