"""Whether a calibration carries over to the held-out trials: the DOFs flagged, their R² and the
warning, on metrics whose R² values are known (worked out by hand below)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.calibrate.generalisation import (
    R2_DROP,
    flagged_dofs,
    generalisation_block,
    mean_r2_per_dof,
)
from pipeline.calibrate.metrics import trial_metrics


def _metrics(r2s: dict[str, dict[str, float]]) -> dict:
    return {"trials": {t: {d: {"rmse_nm": 1.0, "r2": r2} for d, r2 in dofs.items()}
                       for t, dofs in r2s.items()}}


CALIBRATION = _metrics({"c1": {"hip": 0.95, "knee": 0.90, "ankle": 0.99},
                        "c2": {"hip": 0.85, "knee": 0.80, "ankle": 0.97}})


def test_mean_r2_per_dof_skips_nan_trials() -> None:
    metrics = _metrics({"a": {"hip": 0.5, "knee": math.nan}, "b": {"hip": 0.1, "knee": 0.3}})
    means = mean_r2_per_dof(metrics)
    assert means["hip"] == (pytest.approx(0.3), 2)
    assert means["knee"] == (pytest.approx(0.3), 1)
    assert mean_r2_per_dof(None) == {} and mean_r2_per_dof({"trials": {}}) == {}


def test_flags_negative_r2_and_large_drop_only() -> None:
    # calibration means: hip 0.90, knee 0.85, ankle 0.98
    validation = _metrics({"v1": {"hip": 0.70, "knee": -0.2, "ankle": 0.60},
                           "v2": {"hip": 0.60, "knee": 0.10, "ankle": 0.70}})
    # held-out means: hip 0.65 (drop 0.25: kept), knee -0.05 (below 0), ankle 0.65 (drop 0.33)
    flagged = flagged_dofs(CALIBRATION, validation)
    assert list(flagged) == ["knee", "ankle"]
    assert flagged["knee"]["cause"] == "below_zero"
    assert flagged["knee"]["held_out_r2"] == pytest.approx(-0.05)
    assert flagged["knee"]["calibration_r2"] == pytest.approx(0.85)
    assert flagged["ankle"]["cause"] == "drop"
    assert flagged["ankle"]["calibration_r2"] - flagged["ankle"]["held_out_r2"] > R2_DROP
    assert flagged["ankle"]["n_held_out_trials"] == 2
    # only the DOFs asked for (the tracked ones)
    assert list(flagged_dofs(CALIBRATION, validation, dofs=["hip", "ankle"])) == ["ankle"]
    # without a calibration fit only the sign can be judged
    assert list(flagged_dofs({}, validation)) == ["knee"]
    assert flagged_dofs({}, validation)["knee"]["calibration_r2"] is None


def test_warning_names_dofs_values_cause_and_fix(caplog: pytest.LogCaptureFixture) -> None:
    validation = _metrics({"v1": {"hip": 0.89, "knee": -0.5, "ankle": 0.40}})
    block = generalisation_block(CALIBRATION, validation, label="subject s1, method gradient")
    assert block["r2_drop_limit"] == R2_DROP
    assert list(block["flagged"]) == ["knee", "ankle"]
    text = block["warning"]
    assert text.startswith("subject s1, method gradient: the calibration does not carry over")
    assert "knee -0.50 (mean of 1 held-out trial(s), 0.85 on the calibration trials)" in text
    assert "ankle 0.40" in text and "hip" not in text
    assert "below 0 for knee" in text and f"more than {R2_DROP} below" in text
    assert "To fix:" in text and "calibration.prior_weight" in text
    assert text in caplog.text and text.endswith("inverse dynamics.")
    hinted = generalisation_block(CALIBRATION, validation, label="x", hint="record EMG")
    assert hinted["warning"].endswith("inverse dynamics; record EMG.")
    # a calibration that carries over: nothing flagged, nothing logged
    caplog.clear()
    good = generalisation_block(CALIBRATION, CALIBRATION, label="x")
    assert good["flagged"] == {} and good["warning"] is None and not caplog.text


def test_flags_follow_r2_computed_from_signals() -> None:
    """From moments to flags: R² of a prediction that is worse than the mean is negative."""
    t = np.linspace(0.0, 1.0, 201)
    measured = np.stack([np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)])
    good = measured + 0.05 * np.sin(7 * t)
    # the second DOF predicted in anti-phase: SS_res = 4 sum(c^2), about 4 SS_tot, so R² ~ -3
    bad = np.stack([good[0], -measured[1]])
    dofs = ("hip", "knee")
    calibration = {"trials": {"c": trial_metrics(measured, good, dofs)}}
    validation = {"trials": {"v": trial_metrics(measured, bad, dofs)}}
    flagged = flagged_dofs(calibration, validation)
    assert list(flagged) == ["knee"]
    c = measured[1]
    assert flagged["knee"]["held_out_r2"] == pytest.approx(
        1.0 - 4.0 * np.sum(c * c) / np.sum((c - c.mean()) ** 2), rel=1e-12)
    assert flagged["knee"]["held_out_r2"] == pytest.approx(-3.0, abs=0.05)
