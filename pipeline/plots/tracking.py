"""Joint-moment tracking: inverse-dynamics vs model-predicted moments, per trial and DOF."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from pipeline.plots.data import TrialResult
from pipeline.plots.style import COLORS, empty_panel, new_figure, record, styled

ROLE_ORDER = {"calibration": 0, "validation": 1}


def rmse_r2(reference: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """RMSE and coefficient of determination of ``predicted`` against ``reference``."""
    ok = np.isfinite(reference) & np.isfinite(predicted)
    if not ok.any():
        return float("nan"), float("nan")
    ref, pred = reference[ok], predicted[ok]
    rmse = float(np.sqrt(np.mean((ref - pred) ** 2)))
    ss_tot = float(np.sum((ref - ref.mean()) ** 2))
    r2 = 1.0 - float(np.sum((ref - pred) ** 2)) / ss_tot if ss_tot > 0 else float("nan")
    return rmse, r2


def _on_time_base(time_s: np.ndarray, other_time_s: np.ndarray, other: np.ndarray) -> np.ndarray:
    if len(other_time_s) == len(time_s) and np.allclose(other_time_s, time_s):
        return other
    return np.interp(time_s, other_time_s, other, left=np.nan, right=np.nan)


def panel_label(rmse_nm: float, r2: float, *, source: str) -> str:
    """The metrics line of a panel title; ``source`` says where the numbers come from."""
    suffix = "" if source == "metrics.json" else " (computed)"
    return f"RMSE {rmse_nm:.3g} N·m, R² {r2:.3f}{suffix}"


@styled
def moment_tracking_figure(trials: Sequence[TrialResult], *, method: str = "") -> Figure:
    """ID vs predicted joint moments: one row per trial (calibration first), one column per DOF.

    Panel titles carry RMSE and R² from metrics.json when it has the trial (validation trials);
    otherwise (calibration trials) they are computed from the plotted curves and marked
    "(computed)". Records ``"<trial>/<dof>/rmse_nm"``, ``".../r2"`` and ``".../source"``.
    """
    shown = sorted((t for t in trials if t.id_moments is not None),
                   key=lambda t: (ROLE_ORDER.get(t.role, 2), t.name))
    dofs: list[str] = []
    for trial in shown:
        dofs += [d for d in trial.id_moments.names if d not in dofs]  # type: ignore[union-attr]
    fig, axes = new_figure(max(len(shown), 1), max(len(dofs), 1), panel_width_in=3.4,
                           panel_height_in=2.0)
    if not shown:
        empty_panel(axes[0, 0], "no trial has inverse-dynamics moments")
        return fig
    for row, trial in enumerate(shown):
        for col, dof in enumerate(dofs):
            ax = axes[row, col]
            reference = trial.id_moments.get(dof)  # type: ignore[union-attr]
            predicted = None if trial.predicted_moments is None else \
                trial.predicted_moments.get(dof)
            head = f"{trial.name} ({trial.role}) · {dof}"
            if reference is None:
                empty_panel(ax, f"{dof}: not in {trial.name}")
                continue
            time_s = trial.id_moments.time_s  # type: ignore[union-attr]
            ax.plot(time_s, reference, color=COLORS["reference"], label="inverse dynamics")
            if predicted is None:
                ax.set_title(f"{head}\nno predicted moment")
            else:
                predicted = _on_time_base(time_s, trial.predicted_moments.time_s,  # type: ignore
                                          predicted)
                ax.plot(time_s, predicted, color=COLORS["predicted"], linestyle="--",
                        label="predicted (EMG-driven)")
                if dof in trial.metrics:
                    rmse = float(trial.metrics[dof]["rmse_nm"])
                    r2 = float(trial.metrics[dof]["r2"])
                    source = "metrics.json"
                else:
                    rmse, r2 = rmse_r2(reference, predicted)
                    source = "computed"
                ax.set_title(f"{head}\n{panel_label(rmse, r2, source=source)}")
                key = f"{trial.name}/{dof}"
                record(fig, f"{key}/rmse_nm", rmse)
                record(fig, f"{key}/r2", r2)
                record(fig, f"{key}/source", source)
            if row == len(shown) - 1:
                ax.set_xlabel("time (s)")
            if col == 0:
                ax.set_ylabel("moment (N·m)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside upper right", ncols=2)
    fig.suptitle(f"Joint-moment tracking{f' — {method}' if method else ''}", x=0.02,
                 ha="left")
    return fig
