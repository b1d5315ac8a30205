"""Whether a calibration carries over to the held-out trials: the pooled R², the DOFs flagged and
the warning, on metrics whose values are worked out by hand or computed here from signals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.calibrate.generalisation import (
    R2_DROP,
    flagged_dofs,
    generalisation_block,
    pooled_r2_per_dof,
)
from pipeline.calibrate.metrics import trial_metrics


def _metrics(values: dict[str, dict[str, tuple[float, float]]]) -> dict:
    """{trial: {dof: (rmse_nm, r2)}} as a metrics block."""
    return {"trials": {t: {d: {"rmse_nm": rmse, "r2": r2} for d, (rmse, r2) in dofs.items()}
                       for t, dofs in values.items()}}


# per-sample variance = rmse^2 / (1 - r2): hip 1/0.05 + 1/0.15 -> pooled 1 - 2 / (20 + 6.667)
CALIBRATION = _metrics({"c1": {"hip": (1.0, 0.95), "knee": (1.0, 0.90), "ankle": (1.0, 0.99)},
                        "c2": {"hip": (1.0, 0.85), "knee": (1.0, 0.80), "ankle": (1.0, 0.97)}})


def test_pooled_r2_weighs_each_trial_by_its_variance() -> None:
    # a: mse 1, variance 2; b: mse 4, variance 4 -> 1 - 5/6 (the mean of the R² would be 0.25)
    metrics = _metrics({"a": {"hip": (1.0, 0.5), "knee": (1.0, math.nan)},
                        "b": {"hip": (2.0, 0.0), "knee": (3.0, -8.0)}})
    pooled = pooled_r2_per_dof(metrics)
    assert pooled["hip"].r2 == pytest.approx(1.0 / 6.0, rel=1e-12)
    assert (pooled["hip"].n_trials, pooled["hip"].worst_trial, pooled["hip"].worst_r2) == (
        2, "b", 0.0)
    assert pooled["knee"].r2 == pytest.approx(-8.0) and pooled["knee"].n_trials == 1  # NaN out
    # a near-static trial with a hugely negative R² weighs little: mse 1, variance 1/16
    quiet = _metrics({"moving": {"hip": (2.0, 0.8)}, "still": {"hip": (1.0, -15.0)}})
    assert pooled_r2_per_dof(quiet)["hip"].r2 == pytest.approx(1.0 - 5.0 / (20.0 + 1.0 / 16.0))
    # a trial predicted exactly adds nothing; only such trials give R² 1
    assert pooled_r2_per_dof(_metrics({"a": {"hip": (0.0, 1.0)}}))["hip"].r2 == 1.0
    assert pooled_r2_per_dof(None) == {} and pooled_r2_per_dof({"trials": {}}) == {}


def test_flags_negative_r2_and_large_drop_only() -> None:
    cal = pooled_r2_per_dof(CALIBRATION)  # hip 0.925, knee 0.8667, ankle 0.98
    assert cal["hip"].r2 == pytest.approx(1.0 - 2.0 / (20.0 + 1.0 / 0.15))
    validation = _metrics({"v1": {"hip": (1.0, 0.70), "knee": (1.0, -0.2), "ankle": (1.0, 0.60)},
                           "v2": {"hip": (1.0, 0.60), "knee": (1.0, 0.10), "ankle": (1.0, 0.70)}})
    held = pooled_r2_per_dof(validation)  # hip 0.657 (drop 0.27: kept), knee < 0, ankle 0.655
    assert cal["hip"].r2 - held["hip"].r2 < R2_DROP < cal["ankle"].r2 - held["ankle"].r2
    flagged = flagged_dofs(CALIBRATION, validation)
    assert list(flagged) == ["knee", "ankle"]
    assert flagged["knee"]["cause"] == "below_zero"
    assert flagged["knee"]["held_out_r2"] == pytest.approx(1.0 - 2.0 / (1 / 1.2 + 1 / 0.9))
    assert flagged["knee"]["calibration_r2"] == pytest.approx(cal["knee"].r2)
    assert (flagged["knee"]["worst_trial"], flagged["knee"]["worst_trial_r2"]) == ("v1", -0.2)
    assert flagged["ankle"]["cause"] == "drop" and flagged["ankle"]["n_held_out_trials"] == 2
    # only the DOFs asked for (the tracked ones)
    assert list(flagged_dofs(CALIBRATION, validation, dofs=["hip", "ankle"])) == ["ankle"]
    # without a calibration fit only the sign can be judged
    assert list(flagged_dofs({}, validation)) == ["knee"]
    assert flagged_dofs({}, validation)["knee"]["calibration_r2"] is None


def test_warning_names_dofs_values_cause_and_fix(caplog: pytest.LogCaptureFixture) -> None:
    validation = _metrics({"v1": {"hip": (1.0, 0.89), "knee": (1.0, -0.5), "ankle": (1.0, 0.4)}})
    block = generalisation_block(CALIBRATION, validation, dofs=["hip", "knee", "ankle", "toe"],
                                 label="subject s1, method gradient")
    assert block["checked"] and block["r2_drop_limit"] == R2_DROP
    assert list(block["flagged"]) == ["knee", "ankle"] and block["unchecked"] == ["toe"]
    text = block["warning"]
    assert text.startswith("subject s1, method gradient: the calibration does not carry over")
    knee_cal = pooled_r2_per_dof(CALIBRATION)["knee"].r2
    assert f"knee -0.50 (1 trial(s); {knee_cal:.2f} on the calibration trials)" in text
    assert "ankle 0.40" in text and "hip" not in text
    assert "For knee it is below 0:" in text
    assert f"For ankle it is more than {R2_DROP} below the calibration fit." in text
    assert "calibration.prior_weight" in text and "validate on more trials" in text
    assert text in caplog.text and text.endswith(".")
    hinted = generalisation_block(CALIBRATION, validation, label="x", hint="record EMG")
    assert hinted["warning"].endswith("; record EMG.")
    # a calibration that carries over: nothing flagged, nothing logged
    caplog.clear()
    good = generalisation_block(CALIBRATION, CALIBRATION, label="x")
    assert good["flagged"] == {} and good["warning"] is None and not caplog.text
    # no held-out trials: not checked, and every tracked DOF unchecked
    none = generalisation_block(CALIBRATION, None, dofs=["hip", "knee"], label="x")
    assert not none["checked"] and none["unchecked"] == ["hip", "knee"] and not none["flagged"]


def test_pooled_r2_from_signals() -> None:
    """From moments to flags: the pooled R² equals 1 - sum(MSE) / sum(variance) of the signals,
    and a prediction in anti-phase is worse than the mean."""
    dofs = ("hip", "knee")
    rng = np.random.default_rng(3)
    calibration, validation, mse, var = {}, {}, 0.0, 0.0
    for k, n in enumerate((201, 157)):
        t = np.linspace(0.0, 1.0, n)
        measured = np.stack([np.sin(2 * np.pi * t + k), (1 + k) * np.cos(2 * np.pi * t)])
        good = measured + 0.05 * rng.standard_normal(measured.shape)
        bad = np.stack([good[0], -0.5 * measured[1]])  # knee in anti-phase
        calibration[f"c{k}"] = trial_metrics(measured, good, dofs)
        validation[f"v{k}"] = trial_metrics(measured, bad, dofs)
        mse += np.mean((measured[1] - bad[1]) ** 2)
        var += np.var(measured[1])
    flagged = flagged_dofs({"trials": calibration}, {"trials": validation})
    assert list(flagged) == ["knee"]
    assert flagged["knee"]["held_out_r2"] == pytest.approx(1.0 - mse / var, rel=1e-10)
    assert flagged["knee"]["held_out_r2"] < -1.0
