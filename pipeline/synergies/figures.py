"""Figures of muscle synergies: primitives per trial and weightings as bars (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.fileio import atomic_path

__all__ = ["plot_synergies"]


def plot_synergies(
    weightings: np.ndarray,
    primitives: Sequence[np.ndarray],
    /,
    path: str | Path,
    *,
    muscle_names: Sequence[str],
    trial_names: Sequence[str] | None = None,
    time_s: Sequence[np.ndarray] | None = None,
    unrecorded: Sequence[str] = (),
    title: str = "Muscle synergies",
) -> Path:
    """Write a figure with one row per synergy: primitives (left), weightings (right).

    ``weightings`` is ``(muscle, synergy)``; ``primitives`` one ``(synergy, time)`` array per trial
    (lines, one per trial; the x axis is time in s when ``time_s`` is given, else % of the trial).
    Bars of ``unrecorded`` MTUs (synthesised excitations) are hatched. Returns ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weightings = np.asarray(weightings, dtype=float)
    n_synergies = weightings.shape[1]
    trial_names = list(trial_names or (f"trial {k + 1}" for k in range(len(primitives))))
    fig, axes = plt.subplots(n_synergies, 2, figsize=(11, 1.9 * n_synergies + 0.8),
                             squeeze=False, gridspec_kw={"width_ratios": [1.4, 1.0]})
    colours = plt.get_cmap("tab10")
    unrec = set(unrecorded)
    for s in range(n_synergies):
        ax_h, ax_w = axes[s]
        for k, h in enumerate(primitives):
            h = np.asarray(h)
            x = (np.asarray(time_s[k])[:h.shape[1]] if time_s is not None
                 else np.linspace(0.0, 100.0, h.shape[1]))
            ax_h.plot(x, h[s], color=colours(k % 10), lw=1.2, label=trial_names[k])
        ax_h.set_ylabel(f"synergy {s + 1}")
        ax_h.set_ylim(bottom=0.0)
        bars = ax_w.bar(np.arange(len(muscle_names)), weightings[:, s], color="0.45")
        for bar, name in zip(bars, muscle_names, strict=True):
            if name in unrec:
                bar.set_facecolor("white")
                bar.set_edgecolor("C3")
                bar.set_hatch("///")
        ax_w.set_ylim(0.0, max(1.0, float(weightings.max()) * 1.05))
        ax_w.set_xticks(np.arange(len(muscle_names)))
        ax_w.set_xticklabels(muscle_names if s == n_synergies - 1 else [], rotation=60,
                             ha="right", fontsize=7)
    axes[0, 0].set_title("primitives (per trial)")
    axes[0, 1].set_title("weightings (hatched: synthesised)" if unrec else "weightings")
    axes[-1, 0].set_xlabel("time (s)" if time_s is not None else "trial (%)")
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
