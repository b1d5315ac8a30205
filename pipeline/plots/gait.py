"""Figures a biomechanist reads first: joint angles, moments per kg, GRF in body weights and EMG
envelopes with their quality flags, each cycle time-normalised to 0-100 %.

Cycles are the windows of each trial's ``events.json`` (plate contacts, C3D events or kinematic
repetitions, see :mod:`pipeline.signals.events`); a trial without windows is shown whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure

from pipeline.plots.data import Signals
from pipeline.plots.style import (
    empty_panel,
    grid_shape,
    hide_unused,
    label_bottom_panels,
    new_figure,
    record,
    styled,
)
from pipeline.signals.emg_quality import cycle_timing

G = 9.81
#: Okabe-Ito colours, one per trial (solid: calibration, dashed: validation).
TRIAL_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
N_POINTS = 101
PERCENT = np.linspace(0.0, 100.0, N_POINTS)


@dataclass(frozen=True)
class GaitTrial:
    """One dynamic trial's OpenSim outputs and cycles (``windows_s``: [(t0, t1), ...])."""

    name: str
    role: str
    windows_s: tuple[tuple[float, float], ...] = ()
    sides: tuple[str, ...] = ()             # per window: "r", "l" or "" (unknown)
    source: str = ""                        # events.json source: c3d, grf, kinematics
    angles: Signals | None = None       # ik.mot, degrees
    moments: Signals | None = None      # id.sto, N·m / N
    grf: Signals | None = None          # grf.mot, N
    emg: Signals | None = None          # emg.sto, normalised
    emg_flags: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # emg_quality.json: per channel, the envelope's onset and offset times (s).
    emg_onsets_s: Mapping[str, Sequence[float]] = field(default_factory=dict)
    emg_offsets_s: Mapping[str, Sequence[float]] = field(default_factory=dict)


def cycle_curves(signal: np.ndarray, time_s: np.ndarray,
                 windows_s: Sequence[tuple[float, float]]) -> list[np.ndarray]:
    """``signal`` in each window resampled to 0-100 % (101 points); windows the signal does
    not cover (to within one of its samples: a 200 Hz envelope ends up to 5 ms before a plate
    contact found at 1 kHz) are skipped."""
    curves = []
    spans = windows_s or [(float(time_s[0]), float(time_s[-1]))]
    step = float(np.median(np.diff(time_s))) if len(time_s) > 1 else 0.0
    tol = max(step, 1e-6)
    for t0, t1 in spans:
        if t0 < time_s[0] - tol or t1 > time_s[-1] + tol or t1 <= t0:
            continue
        curves.append(np.interp(t0 + PERCENT / 100.0 * (t1 - t0), time_s, signal))
    return curves


def side_of(name: str) -> str:
    """``"r"``/``"l"`` for names such as ``knee_angle_r``, ``ground_force_l_vy``; else ``""``."""
    for side in ("r", "l"):
        if name.endswith(f"_{side}") or f"_{side}_" in name:
            return side
    return ""


def _windows(trial: GaitTrial, side: str) -> list[tuple[float, float]]:
    """The trial's windows of ``side`` (all when the side or the windows' sides are unknown)."""
    if not side or len(trial.sides) != len(trial.windows_s):
        return list(trial.windows_s)
    return [w for w, s in zip(trial.windows_s, trial.sides, strict=True) if s in (side, "")]


def _xlabel(trials: Sequence[GaitTrial]) -> str:
    return "stance (%)" if trials and all(t.source == "grf" for t in trials) else "cycle (%)"


def _mark_timing(fig: Figure, ax, trial: GaitTrial, name: str, span: tuple[float, float],
                 curve: np.ndarray, color: str, key: str, k: int) -> None:
    """EMG onsets (up triangles) and offsets (down triangles) inside ``span`` on its curve;
    records ``<key>/<trial>/<k>/onsets_percent`` and ``.../offsets_percent``."""
    for what, times, marker in (("onsets", trial.emg_onsets_s.get(name) or (), "^"),
                                ("offsets", trial.emg_offsets_s.get(name) or (), "v")):
        percents = [c["percent"] for c in cycle_timing(times, [span])]
        if percents:
            ax.plot(percents, np.interp(percents, PERCENT, curve), marker, color=color,
                    markersize=6, markeredgecolor="black", markeredgewidth=0.5, linestyle="",
                    label=f"EMG {what[:-1]} (25 % of range)")
        record(fig, f"{key}/{trial.name}/{k}/{what}_percent", percents)


def _panels(trials: Sequence[GaitTrial], pick, names: Sequence[str], *, scale: float,
            ylabel: str, key: str, flags: Mapping[str, Sequence[str]] | None = None,
            side: str = "", timing: bool = False) -> Figure:
    rows, cols = grid_shape(len(names), max_cols=3)
    fig, axes = new_figure(rows, cols, panel_width_in=3.3, panel_height_in=2.3)
    flat = axes.ravel()
    for i, name in enumerate(names):
        ax = flat[i]
        drawn = 0
        for j, trial in enumerate(trials):
            signals = pick(trial)
            if signals is None or name not in signals.names:
                continue
            color = TRIAL_COLORS[j % len(TRIAL_COLORS)]
            windows = _windows(trial, side_of(name) or side)
            if trial.windows_s and not windows:
                continue
            spans = windows or [(float(signals.time_s[0]), float(signals.time_s[-1]))]
            k = 0
            for span in spans:
                curves = cycle_curves(signals.get(name) * scale, signals.time_s, [span])
                if not curves:
                    continue
                curve = curves[0]
                style = "-" if trial.role == "calibration" else "--"
                ax.plot(PERCENT, curve, style, color=color, lw=1.2,
                        label=f"{trial.name} ({trial.role})" if k == 0 else None)
                record(fig, f"{key}/{name}/{trial.name}/{k}/peak", float(np.max(np.abs(curve))))
                if timing:
                    _mark_timing(fig, ax, trial, name, span, curve, color, f"{key}/{name}", k)
                k += 1
                drawn += 1
        title = name
        bad = sorted({f for t in trials for f in (t.emg_flags.get(name) or [])})
        if flags is not None and bad:
            title = f"{name}  [{', '.join(bad)}]"
            ax.set_title(title, fontsize=9, color="#a00000")
        else:
            ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel)
        if not drawn:
            empty_panel(ax, "no data in any cycle")
    hide_unused(axes, len(names))
    label_bottom_panels(axes, _xlabel(trials))
    handles, labels = [], []
    for ax in flat:
        for h, lb in zip(*ax.get_legend_handles_labels(), strict=True):
            if lb not in labels:
                handles.append(h)
                labels.append(lb)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)),
                   fontsize=8, frameon=False)
    return fig


@styled
def joint_angles_figure(trials: Sequence[GaitTrial], dofs: Sequence[str]) -> Figure:
    """IK angles (degrees) of ``dofs`` per cycle. Records ``angles/<dof>/<trial>/<k>/peak``."""
    return _panels(trials, lambda t: t.angles, dofs, scale=1.0, ylabel="angle (deg)",
                   key="angles")


@styled
def moments_per_kg_figure(trials: Sequence[GaitTrial], dofs: Sequence[str], *,
                          mass_kg: float) -> Figure:
    """ID moments of ``dofs`` in N·m/kg per cycle. Records ``moments/<column>/...``."""
    columns = [f"{d}_moment" for d in dofs]
    return _panels(trials, lambda t: t.moments, columns, scale=1.0 / mass_kg,
                   ylabel="moment (N·m/kg)", key="moments")


@styled
def grf_bw_figure(trials: Sequence[GaitTrial], *, mass_kg: float) -> Figure:
    """Per foot, the anterior, vertical and right-ward GRF in body weights per cycle."""
    columns = [f"ground_force_{s}_v{a}" for s in "rl" for a in "xyz"]
    present = [c for c in columns if any(t.grf is not None and t.grf.has_data(c)
                                         for t in trials)]
    if not present:
        fig, axes = new_figure(1, 1)
        empty_panel(axes[0, 0], "no ground reaction forces")
        return fig
    return _panels(trials, lambda t: t.grf, present, scale=1.0 / (mass_kg * G),
                   ylabel="force (BW)", key="grf")


@styled
def emg_figure(trials: Sequence[GaitTrial], *, side: str = "") -> Figure:
    """Normalised EMG envelopes per channel and cycle; a flagged channel's title is red and
    names its flags (see emg_quality.json); onsets and offsets (emg_quality.json) are marked on
    the cycle they fall in. ``side`` ("r"/"l"): the recorded leg, whose cycles are shown."""
    names = sorted({n for t in trials if t.emg is not None for n in t.emg.names} |
                   {n for t in trials for n in t.emg_flags})
    if not names:
        fig, axes = new_figure(1, 1)
        empty_panel(axes[0, 0], "no EMG")
        return fig
    fig = _panels(trials, lambda t: t.emg, names, scale=1.0, ylabel="excitation (0-1)",
                  key="emg", flags={}, side=side, timing=True)
    for name in names:
        bad = sorted({f for t in trials for f in (t.emg_flags.get(name) or [])})
        record(fig, f"emg_flags/{name}", bad)
    return fig
