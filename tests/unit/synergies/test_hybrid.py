"""Synergy-hybrid calibration on a synthetic problem whose excitations come from known synergies.

With k channels hidden, the synthesised excitations of the hidden MTUs must correlate with their
true excitations, and moments must be tracked better than by EMG-driven calibration with the same
channels missing (their MTUs driven by zero excitation), on calibration and validation trials.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

from pipeline.calibrate.gradient import GradientOptions, calibrate_gradient
from pipeline.calibrate.losses import Objective, penalties_from_config
from pipeline.calibrate.synthetic import perturbed_start
from pipeline.errors import CalibrationError, ConfigError
from pipeline.synergies.hybrid import HybridOptions, calibrate_synergy_hybrid
from pipeline.synergies.synthetic import make_synergy_problem
from pipeline.synergies.validation import evaluate, synthesise_unrecorded

log = logging.getLogger(__name__)

OPTIONS = GradientOptions(max_iterations=300, patience=50, progress=False, log_every=0)


@pytest.fixture(scope="module")
def synergy_problem():
    torch.set_num_threads(1)
    return make_synergy_problem(n_mtus=8, n_dofs=2, n_synergies=3, n_calibration=2,
                                n_validation=1, n_samples=200, tendon="stiff", seed=0)


def hide(batch, names):
    idx = [batch.mtu_names.index(m) for m in names]
    excitation = batch.excitation.clone()
    excitation[:, idx] = 0.0
    return dataclasses.replace(batch, excitation=excitation)


def objective_for(problem, batch):
    return Objective(problem.spec, batch, tendon=problem.tendon, emd_s=problem.emd_s,
                     penalties=penalties_from_config(problem.config.get("penalties")))


@pytest.mark.slow
@pytest.mark.parametrize("hidden", [("mtu04",), ("mtu01", "mtu04", "mtu06")])
def test_hidden_channels_are_synthesised_and_moments_beat_emg_driven(synergy_problem, hidden):
    problem = synergy_problem.problem
    cal = hide(problem.calibration, hidden)
    val = hide(problem.validation, hidden)
    objective = objective_for(problem, cal)
    p0 = perturbed_start(problem.spec, problem.truth, rel_sd=0.1, seed=1)
    options = HybridOptions(n_synergies=3, reconstruction_weight=10.0, synthesis_weight=0.01,
                            restarts=3, seed=0)
    hybrid = calibrate_synergy_hybrid(objective, unrecorded=hidden, options=options,
                                      gradient_options=OPTIONS, p0=p0)
    assert hybrid.unrecorded == hidden and hybrid.n_synergies == 3

    # synthesised excitations of the hidden MTUs correlate with the truth (calibration trials)
    idx = [cal.mtu_names.index(m) for m in hidden]
    truth_cal = problem.calibration.excitation[:, idx].numpy()
    synth_cal = hybrid.synthesised()
    r_cal = [np.corrcoef(synth_cal[:, j].ravel(), truth_cal[:, j].ravel())[0, 1]
             for j in range(len(hidden))]
    # ... and on validation trials, with primitives fitted to the recorded channels (W fixed)
    filled = synthesise_unrecorded(val, hybrid.weightings, unrecorded=hidden)
    truth_val = problem.validation.excitation[:, idx].numpy()
    r_val = [np.corrcoef(filled.synthesised[:, j].ravel(), truth_val[:, j].ravel())[0, 1]
             for j in range(len(hidden))]
    assert min(filled.reconstruction_vaf) > 0.95

    # EMG-driven calibration with the same channels missing (zero excitation)
    emg = calibrate_gradient(objective.terms, problem.spec, options=OPTIONS, p0=p0)
    emg_val, _ = evaluate(objective, emg.p, val)
    hybrid_val, _ = evaluate(objective, hybrid.p, filled.batch)
    with torch.no_grad():
        emg_cal = objective.terms(torch.as_tensor(emg.p)).tracking
    log.info("hidden %s: r_cal %s, r_val %s; validation RMSE hybrid %.3f vs EMG-driven %.3f "
             "N*m; R2 %.3f vs %.3f; calibration tracking %.4g vs %.4g", hidden,
             np.round(r_cal, 3), np.round(r_val, 3), hybrid_val["mean_rmse_nm"],
             emg_val["mean_rmse_nm"], hybrid_val["mean_r2"], emg_val["mean_r2"],
             hybrid.loss_terms["tracking"], float(emg_cal))
    assert min(r_cal) >= 0.8, r_cal
    assert min(r_val) >= 0.8, r_val
    assert hybrid_val["mean_rmse_nm"] < emg_val["mean_rmse_nm"]
    assert hybrid.loss_terms["tracking"] < float(emg_cal)


def test_unrecorded_mtu_not_in_model_is_a_config_error(synergy_problem):
    problem = synergy_problem.problem
    objective = objective_for(problem, problem.calibration)
    with pytest.raises(ConfigError, match=r"'biceps_long' .*not in the model.*Fix: spell"):
        calibrate_synergy_hybrid(objective, unrecorded=["mtu01", "biceps_long"],
                                 gradient_options=OPTIONS)


def test_no_recorded_channel_is_a_calibration_error(synergy_problem):
    problem = synergy_problem.problem
    objective = objective_for(problem, problem.calibration)
    with pytest.raises(CalibrationError, match=r"no recorded EMG channel.*Fix: keep at least"):
        calibrate_synergy_hybrid(objective, unrecorded=list(problem.calibration.mtu_names),
                                 gradient_options=OPTIONS)


def test_more_synergies_than_recorded_channels_is_a_config_error(synergy_problem):
    problem = synergy_problem.problem
    objective = objective_for(problem, problem.calibration)
    hidden = list(problem.calibration.mtu_names[:6])  # 2 recorded channels left
    with pytest.raises(ConfigError, match=r"n_synergies = 3 is more than the 2 recorded.*Fix"):
        calibrate_synergy_hybrid(objective, unrecorded=hidden,
                                 options=HybridOptions(n_synergies=3), gradient_options=OPTIONS)
