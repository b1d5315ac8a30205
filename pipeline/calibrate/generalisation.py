"""Does a calibration carry over to the held-out trials? Warnings per tracked DOF.

A calibrated model can fit its calibration trials closely and still predict the held-out trials'
joint moments badly: too many free parameters for what the calibration trials excite, trials
that do not cover the held-out movements, or held-out trials whose EMG, kinematics or inverse
dynamics differ. :func:`flagged_dofs` compares, per DOF, the held-out trials' pooled R² with the
calibration trials' and keeps the DOFs that fail either check:

* the held-out R² is below 0: the model predicts the held-out moments worse than the held-out
  moments' own mean would;
* the held-out R² is more than :data:`R2_DROP` below the calibration trials' R².

The pooled R² of a DOF over trials is ``1 - sum(MSE_k) / sum(VAR_k)``: each trial's
mean squared error and its measured moment's variance about the trial's mean, every trial
weighted equally (:func:`pooled_r2_per_dof`). Unlike the mean of the trials' R², a trial whose
moment hardly varies (whose own R² can be -15 from an error of a few N·m) weighs little.

The validation step logs :func:`generalisation_warning`'s message and writes the block of
:func:`generalisation_block` to ``metrics.json`` (``generalisation``); the report lists the
message and marks the R² cells of the flagged DOFs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Largest accepted fall of a DOF's R² from the calibration trials to the held-out trials.
R2_DROP = 0.3

FIX = ("calibrate on trials that cover the held-out movements, free fewer parameters "
       "(calibration.parameters, calibration.groups) or pull them towards the scaled model "
       "(calibration.prior_weight), and check the held-out trials' EMG, inverse kinematics and "
       "inverse dynamics")


@dataclass(frozen=True)
class PooledR2:
    """A DOF's R² pooled over trials, how many trials entered, and the trial of lowest R²."""

    r2: float
    n_trials: int
    worst_trial: str
    worst_r2: float


def pooled_r2_per_dof(metrics: Mapping[str, Any] | None) -> dict[str, PooledR2]:
    """Per DOF, the R² pooled over the trials of a metrics block (``{"trials": {trial: {dof:
    {"rmse_nm", "r2"}}}}``; see the module doc). A trial enters where its R² and RMSE are finite;
    its variance is ``rmse_nm**2 / (1 - r2)``. A trial predicted exactly (``r2`` within 1e-12 of
    1) adds no error and its variance cannot be recovered, so it is left out of both sums (a DOF
    with only such trials gets R² 1)."""
    sums: dict[str, list[float]] = {}
    worst: dict[str, tuple[float, str]] = {}
    for trial, dofs in ((metrics or {}).get("trials") or {}).items():
        for dof, values in dofs.items():
            if not isinstance(values, Mapping):
                continue
            r2, rmse = values.get("r2"), values.get("rmse_nm")
            if r2 is None or rmse is None or not (math.isfinite(float(r2))
                                                  and math.isfinite(float(rmse))):
                continue
            r2, mse = float(r2), float(rmse) ** 2
            acc = sums.setdefault(dof, [0.0, 0.0, 0.0])
            acc[2] += 1
            if 1.0 - r2 > 1e-12:
                acc[0] += mse
                acc[1] += mse / (1.0 - r2)
            if dof not in worst or r2 < worst[dof][0]:
                worst[dof] = (r2, str(trial))
    return {dof: PooledR2(1.0 - mse / var if var > 0.0 else 1.0, int(n), worst[dof][1],
                          worst[dof][0])
            for dof, (mse, var, n) in sums.items()}


def flagged_dofs(calibration: Mapping[str, Any] | None, validation: Mapping[str, Any] | None,
                 *, dofs: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """The DOFs (of ``dofs``, default every validated one) whose pooled held-out R² is below 0
    or more than :data:`R2_DROP` below their pooled calibration R²: ``{dof: {"held_out_r2",
    "n_held_out_trials", "worst_trial", "worst_trial_r2", "calibration_r2" (None without a
    calibration fit), "cause"}}`` with ``cause`` ``"below_zero"`` or ``"drop"``."""
    return _flagged(pooled_r2_per_dof(calibration), pooled_r2_per_dof(validation), dofs)


def _flagged(fitted: Mapping[str, PooledR2], held_out: Mapping[str, PooledR2],
             dofs: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    flagged = {}
    for dof in (held_out if dofs is None else [d for d in dofs if d in held_out]):
        pooled = held_out[dof]
        cal = fitted[dof].r2 if dof in fitted else None
        if pooled.r2 < 0.0:
            cause = "below_zero"
        elif cal is not None and cal - pooled.r2 > R2_DROP:
            cause = "drop"
        else:
            continue
        flagged[dof] = {"held_out_r2": pooled.r2, "n_held_out_trials": pooled.n_trials,
                        "worst_trial": pooled.worst_trial, "worst_trial_r2": pooled.worst_r2,
                        "calibration_r2": cal, "cause": cause}
    return flagged


def generalisation_warning(flagged: Mapping[str, Mapping[str, Any]], *,
                           label: str, hint: str = "") -> str | None:
    """One message for the DOFs of :func:`flagged_dofs` (None when there are none); ``label``
    says whose calibration it is (e.g. ``"subject leg01, method gradient"``), ``hint`` adds a
    method's own fix."""
    if not flagged:
        return None
    parts = []
    for dof, f in flagged.items():
        n = f["n_held_out_trials"]
        worst = (f", lowest in {f['worst_trial']}: {f['worst_trial_r2']:.2f}" if n > 1 else "")
        cal = ("" if f["calibration_r2"] is None
               else f"; {f['calibration_r2']:.2f} on the calibration trials")
        parts.append(f"{dof} {f['held_out_r2']:.2f} ({n} trial(s){worst}{cal})")
    below = [d for d, f in flagged.items() if f["cause"] == "below_zero"]
    dropped = [d for d in flagged if d not in below]
    sentences = [f"{label}: the calibration does not carry over to the held-out trials. Held-out "
                 f"R² pooled over the trials: {'; '.join(parts)}."]
    if below:
        sentences.append(f"For {', '.join(below)} it is below 0: the model predicts those "
                         "held-out moments worse than their own mean does.")
    if dropped:
        sentences.append(f"For {', '.join(dropped)} it is more than {R2_DROP} below the "
                         "calibration fit.")
    fixes = [FIX]
    if any(f["n_held_out_trials"] == 1 for f in flagged.values()):
        fixes.append("with a single held-out trial, validate on more trials before trusting "
                     "either figure")
    if hint:
        fixes.append(hint)
    sentences.append(f"To fix: {'; '.join(fixes)}.")
    return " ".join(sentences)


def generalisation_block(calibration: Mapping[str, Any] | None,
                         validation: Mapping[str, Any] | None, *,
                         dofs: Sequence[str] | None = None, label: str,
                         hint: str = "") -> dict[str, Any]:
    """``metrics.json``'s ``generalisation`` entry; its warning, if any, is logged.

    ``checked`` is false when there are no held-out trials; ``unchecked`` lists the DOFs of
    ``dofs`` that no held-out trial could judge (no finite R²: e.g. a constant moment)."""
    judged = pooled_r2_per_dof(validation)
    flagged = _flagged(pooled_r2_per_dof(calibration), judged, dofs)
    warning = generalisation_warning(flagged, label=label, hint=hint)
    if warning:
        log.warning("%s", warning)
    checked = bool((validation or {}).get("trials"))
    unchecked = [d for d in (dofs if dofs is not None else []) if d not in judged]
    return {"checked": checked, "r2_drop_limit": R2_DROP, "flagged": flagged,
            "unchecked": unchecked if checked else list(dofs or []), "warning": warning}
