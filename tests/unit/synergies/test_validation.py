"""Validation trials: primitives fitted with the weightings fixed reproduce hidden excitations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from pipeline.calibrate.losses import Objective
from pipeline.synergies.synthetic import make_synergy_problem
from pipeline.synergies.validation import evaluate, synthesise_unrecorded

HIDDEN = ("mtu01", "mtu05")


@pytest.fixture(scope="module")
def problem():
    return make_synergy_problem(n_mtus=6, n_dofs=2, n_calibration=1, n_validation=2,
                                n_samples=120, tendon="stiff", seed=4)


@pytest.mark.parametrize("method", ["nnls", "multiplicative"])
def test_true_weightings_reproduce_hidden_excitations(problem, method):
    batch = problem.problem.validation
    idx = [batch.mtu_names.index(m) for m in HIDDEN]
    hidden = batch.excitation.clone()
    hidden[:, idx] = float("nan")  # the unrecorded rows are never read
    filled = synthesise_unrecorded(dataclasses.replace(batch, excitation=hidden),
                                   problem.weightings, unrecorded=HIDDEN, method=method)
    truth = batch.excitation[:, idx].numpy()
    atol = 1e-8 if method == "nnls" else 2e-2
    np.testing.assert_allclose(filled.synthesised, truth, atol=atol)
    assert filled.unrecorded == HIDDEN
    assert min(filled.reconstruction_vaf) > (1 - 1e-10 if method == "nnls" else 0.99)
    np.testing.assert_allclose(filled.primitives, problem.primitives[1:], atol=atol * 10)
    # recorded rows are left exactly as recorded
    rec = [i for i in range(len(batch.mtu_names)) if i not in idx]
    torch.testing.assert_close(filled.batch.excitation[:, rec], batch.excitation[:, rec])


def test_open_loop_execution_with_true_parameters_tracks_exactly(problem):
    synthetic = problem.problem
    objective = Objective(synthetic.spec, synthetic.calibration, tendon=synthetic.tendon,
                          emd_s=synthetic.emd_s)
    filled = synthesise_unrecorded(synthetic.validation, problem.weightings, unrecorded=HIDDEN)
    metrics, output = evaluate(objective, synthetic.truth, filled.batch)
    assert metrics["mean_rmse_nm"] < 1e-6 and metrics["mean_r2"] > 1 - 1e-9
    assert set(metrics["trials"]) == set(synthetic.validation.trial_names)
    assert output.moments_nm.shape == synthetic.validation.id_moment_nm.shape
    # zero excitation for the hidden MTUs (EMG-driven with channels missing) does not track
    zeroed = synthetic.validation.excitation.clone()
    zeroed[:, [synthetic.validation.mtu_names.index(m) for m in HIDDEN]] = 0.0
    worse, _ = evaluate(objective, synthetic.truth,
                        dataclasses.replace(filled.batch, excitation=zeroed))
    assert worse["mean_rmse_nm"] > 0.5
