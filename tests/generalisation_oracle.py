"""What the generalisation check should say, worked out from the signals a method wrote.

For each trial, the model moments the method wrote (``execution/<trial>/moments.sto``) against
the inverse-dynamics moments of the trial's NMS input file: per DOF, mean squared error and the
measured moment's variance; pooled over trials as ``1 - sum(MSE) / sum(variance)``; flagged
when the held-out value is below 0 or more than 0.3 below the calibration trials'.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.io.nms_inputs import read_nms_trial
from pipeline.io.opensim_files import read_sto

DROP = 0.3  # the documented limit, written out here on purpose


def pooled_r2_from_signals(execution: Path, inputs: Sequence[str | Path]) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for path in inputs:
        trial = read_nms_trial(path)
        label = trial.meta.get("trial") or Path(path).parent.name
        model = read_sto(Path(execution) / str(label) / "moments.sto")
        for d, dof in enumerate(trial.dof_names):
            measured = np.asarray(trial.id_moment_nm[d], dtype=float)
            predicted = model.column(dof)
            keep = np.isfinite(measured) & np.isfinite(predicted)
            if keep.sum() < 2 or np.var(measured[keep]) == 0.0:
                continue
            acc = sums.setdefault(dof, [0.0, 0.0])
            acc[0] += float(np.mean((measured[keep] - predicted[keep]) ** 2))
            acc[1] += float(np.var(measured[keep]))
    return {dof: 1.0 - mse / var for dof, (mse, var) in sums.items()}


def expected_flags(execution: Path, calibration_inputs: Sequence[str | Path],
                   validation_inputs: Sequence[str | Path],
                   dofs: Sequence[str] | None = None) -> dict[str, float]:
    """``{dof: held-out pooled R²}`` of the DOFs the check should flag."""
    held = pooled_r2_from_signals(execution, validation_inputs)
    fit = pooled_r2_from_signals(execution, calibration_inputs)
    return {dof: r2 for dof, r2 in held.items()
            if (dofs is None or dof in dofs)
            and (r2 < 0.0 or (dof in fit and fit[dof] - r2 > DROP))}
