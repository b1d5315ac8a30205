"""Does a calibration carry over to the held-out trials? Warnings per tracked DOF.

A calibrated model can fit its calibration trials closely and still predict the held-out trials'
joint moments badly: too many free parameters for what the calibration trials excite, trials
that do not cover the held-out movements, or held-out trials whose EMG or inverse dynamics
differ. :func:`flagged_dofs` compares, per DOF, the validation trials' mean R² with the
calibration trials' and keeps the DOFs that fail either check:

* the held-out R² is below 0: the model predicts the held-out moments worse than the held-out
  moments' own mean would;
* the held-out R² is more than :data:`R2_DROP` below the calibration trials' R².

The validation step logs :func:`generalisation_warning`'s message and writes both to
``metrics.json`` (``generalisation``); the report lists the message and marks the R² cells of the
flagged DOFs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

#: Largest accepted fall of a DOF's R² from the calibration trials to the held-out trials.
R2_DROP = 0.3

FIX = ("calibrate on trials that cover the held-out movements, free fewer parameters "
       "(calibration.parameters, calibration.groups) or pull them towards the scaled model "
       "(calibration.prior_weight), and check the held-out trials' EMG and inverse dynamics")


def mean_r2_per_dof(metrics: Mapping[str, Any] | None) -> dict[str, tuple[float, int]]:
    """``{dof: (mean R² over the trials where it is finite, number of those trials)}`` of a
    metrics block (``{"trials": {trial: {dof: {"rmse_nm", "r2"}}}}``)."""
    sums: dict[str, list[float]] = {}
    for dofs in ((metrics or {}).get("trials") or {}).values():
        for dof, values in dofs.items():
            r2 = values.get("r2") if isinstance(values, Mapping) else None
            if r2 is not None and math.isfinite(float(r2)):
                sums.setdefault(dof, []).append(float(r2))
    return {dof: (sum(v) / len(v), len(v)) for dof, v in sums.items()}


def flagged_dofs(calibration: Mapping[str, Any] | None, validation: Mapping[str, Any] | None,
                 *, dofs: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """The DOFs (of ``dofs``, default every validated one) whose held-out R² is below 0 or more
    than :data:`R2_DROP` below their calibration R²: ``{dof: {"held_out_r2",
    "n_held_out_trials", "calibration_r2" (None without a calibration fit), "cause"}}`` with
    ``cause`` ``"below_zero"`` or ``"drop"``."""
    held_out = mean_r2_per_dof(validation)
    fitted = mean_r2_per_dof(calibration)
    flagged = {}
    for dof in (held_out if dofs is None else [d for d in dofs if d in held_out]):
        r2, n = held_out[dof]
        cal = fitted[dof][0] if dof in fitted else None
        if r2 < 0.0:
            cause = "below_zero"
        elif cal is not None and cal - r2 > R2_DROP:
            cause = "drop"
        else:
            continue
        flagged[dof] = {"held_out_r2": r2, "n_held_out_trials": n, "calibration_r2": cal,
                        "cause": cause}
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
        cal = ("" if f["calibration_r2"] is None
               else f", {f['calibration_r2']:.2f} on the calibration trials")
        parts.append(f"{dof} {f['held_out_r2']:.2f} (mean of {f['n_held_out_trials']} "
                     f"held-out trial(s){cal})")
    below = [d for d, f in flagged.items() if f["cause"] == "below_zero"]
    causes = []
    if below:
        causes.append(f"below 0 for {', '.join(below)}: the model predicts those held-out "
                      "moments worse than their own mean does")
    if len(below) < len(flagged):
        causes.append(f"more than {R2_DROP} below the calibration fit for "
                      f"{', '.join(d for d in flagged if d not in below)}")
    return (f"{label}: the calibration does not carry over to the held-out trials. Held-out "
            f"R²: {'; '.join(parts)}; {' and '.join(causes)}. To fix: {FIX}"
            + (f"; {hint}." if hint else "."))


def generalisation_block(calibration: Mapping[str, Any] | None,
                         validation: Mapping[str, Any] | None, *,
                         dofs: Sequence[str] | None = None, label: str,
                         hint: str = "") -> dict[str, Any]:
    """``metrics.json``'s ``generalisation`` entry; its warning, if any, is logged."""
    flagged = flagged_dofs(calibration, validation, dofs=dofs)
    warning = generalisation_warning(flagged, label=label, hint=hint)
    if warning:
        log.warning("%s", warning)
    return {"r2_drop_limit": R2_DROP, "flagged": flagged, "warning": warning}
