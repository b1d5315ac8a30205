"""Moment-tracking metrics: RMSE (N·m) and coefficient of determination R² per DOF."""

from __future__ import annotations

import numpy as np


def rmse(measured: np.ndarray, predicted: np.ndarray, /) -> float:
    """Root-mean-square error over samples (NaNs ignored)."""
    diff = np.asarray(predicted, dtype=float) - np.asarray(measured, dtype=float)
    return float(np.sqrt(np.nanmean(diff * diff)))


def r_squared(measured: np.ndarray, predicted: np.ndarray, /) -> float:
    """``1 - SS_res / SS_tot`` (NaN when the measured signal is constant)."""
    measured = np.asarray(measured, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    ss_res = float(np.nansum((measured - predicted) ** 2))
    ss_tot = float(np.nansum((measured - np.nanmean(measured)) ** 2))
    if ss_tot <= 0.0:
        return float("nan")
    return 1.0 - ss_res / ss_tot


def trial_metrics(measured: np.ndarray, predicted: np.ndarray, /,
                  dof_names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per-DOF ``{"rmse_nm", "r2"}`` of one trial; arrays are ``(dof, time)``."""
    return {dof: {"rmse_nm": rmse(measured[d], predicted[d]),
                  "r2": r_squared(measured[d], predicted[d])}
            for d, dof in enumerate(dof_names)}


def summarise(per_trial: dict[str, dict[str, dict[str, float]]]) -> dict[str, float | None]:
    """Means over trials and DOFs of ``rmse_nm`` and ``r2`` (None when there are none)."""
    rmses = [m["rmse_nm"] for t in per_trial.values() for m in t.values()]
    r2s = [m["r2"] for t in per_trial.values() for m in t.values() if np.isfinite(m["r2"])]
    return {"mean_rmse_nm": float(np.mean(rmses)) if rmses else None,
            "mean_r2": float(np.mean(r2s)) if r2s else None}
