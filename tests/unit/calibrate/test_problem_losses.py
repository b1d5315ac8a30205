"""Batching checks (bad inputs) and the objective: penalties, residuals, gradcheck."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.calibrate.losses import range_penalty
from pipeline.calibrate.problem import load_trials
from pipeline.calibrate.run import make_objective
from pipeline.calibrate.synthetic import make_problem
from pipeline.errors import CalibrationError
from pipeline.io.nms_inputs import NMSTrial, write_nms_trial


def write_trials(tmp_path: Path, n: int = 2, *, n_mtus: int = 3, n_dofs: int = 2,
                 n_time: int = 60) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for k in range(n):
        arm = np.zeros((n_mtus, n_dofs, n_time))
        for m in range(n_mtus):
            arm[m, m % n_dofs] = 0.02
        trial = NMSTrial(
            time_s=np.arange(n_time) * 0.01, mtu_names=tuple(f"m{i}" for i in range(n_mtus)),
            dof_names=tuple(f"q{i}" for i in range(n_dofs)),
            excitation=rng.uniform(0.05, 0.5, (n_mtus, n_time)),
            mtu_length_m=np.full((n_mtus, n_time), 0.3), moment_arm_m=arm,
            id_moment_nm=rng.normal(size=(n_dofs, n_time)), meta={"trial": f"t{k}"})
        path = tmp_path / f"t{k}" / "nms_inputs.npz"
        path.parent.mkdir()
        write_nms_trial(path, trial)
        paths.append(path)
    return paths


def _rewrite(path: Path, **changes) -> None:
    from pipeline.io.nms_inputs import read_nms_trial

    trial = read_nms_trial(path)
    fields = {k: getattr(trial, k) for k in ("time_s", "mtu_names", "dof_names", "excitation",
                                              "mtu_length_m", "moment_arm_m", "id_moment_nm")}
    fields.update(changes)
    write_nms_trial(path, NMSTrial(**fields, meta=trial.meta))


def test_trials_of_different_length_are_padded_and_masked(tmp_path: Path) -> None:
    paths = write_trials(tmp_path)
    from pipeline.io.nms_inputs import read_nms_trial

    t = read_nms_trial(paths[1])
    _rewrite(paths[1], time_s=t.time_s[:40], excitation=t.excitation[:, :40],
             mtu_length_m=t.mtu_length_m[:, :40], moment_arm_m=t.moment_arm_m[..., :40],
             id_moment_nm=t.id_moment_nm[:, :40])
    batch = load_trials(paths)
    assert batch.excitation.shape == (2, 3, 60)
    assert batch.mask.sum(dim=1).tolist() == [60, 40]
    assert batch.dt_s == pytest.approx(0.01)


def test_dof_without_mtu_names_the_dof(tmp_path: Path) -> None:
    paths = write_trials(tmp_path, n_mtus=2, n_dofs=3)
    with pytest.raises(CalibrationError, match=r"DOF 'q2'.*remove q2 from the model's dofs"):
        load_trials(paths)


def test_all_zero_emg_names_the_trial_file(tmp_path: Path) -> None:
    paths = write_trials(tmp_path)
    _rewrite(paths[1], excitation=np.zeros((3, 60)))
    with pytest.raises(CalibrationError, match=rf"{paths[1]}.*all EMG excitations are zero"):
        load_trials(paths)


def test_mtu_without_emg_is_left_out(tmp_path: Path, caplog) -> None:
    paths = write_trials(tmp_path)
    for path in paths:
        exc = np.random.default_rng(1).uniform(0.1, 0.4, (3, 60))
        exc[2] = np.nan
        _rewrite(path, excitation=exc)
    with caplog.at_level(logging.WARNING):
        batch = load_trials(paths)
    assert batch.mtu_names == ("m0", "m1")
    assert "m2" in caplog.text


def test_range_penalty_values() -> None:
    x = torch.tensor([0.3, 0.5, 1.0, 1.5, 1.7], dtype=torch.float64)
    pen = range_penalty(x, lower=0.5, upper=1.5, weight=10.0)
    torch.testing.assert_close(pen, torch.tensor([0.4, 0.0, 0.0, 0.0, 0.4],
                                                 dtype=torch.float64))


@pytest.mark.parametrize("tendon", ["stiff", "elastic"])
def test_loss_is_zero_at_truth_and_residuals_match(tendon: str) -> None:
    problem = make_problem(n_mtus=3, n_dofs=2, n_calibration=2, n_validation=1, n_samples=80,
                           tendon=tendon, seed=3)
    objective = make_objective(problem.spec, problem.calibration, problem.config)
    truth = torch.as_tensor(problem.truth)
    assert float(objective(truth)) < 1e-20
    p = truth * 1.05
    terms = objective.terms(p)
    assert float(terms.total) > 0
    torch.testing.assert_close((objective.residuals(p) ** 2).sum(), terms.tracking)
    torch.testing.assert_close((objective.all_residuals(p) ** 2).sum(), terms.total)


def test_penalty_enters_the_loss() -> None:
    problem = make_problem(n_mtus=3, n_dofs=2, n_calibration=1, n_validation=1, n_samples=60,
                           tendon="stiff", seed=3)
    objective = make_objective(problem.spec, problem.calibration, problem.config)
    p = torch.as_tensor(problem.truth).clone()
    sl = problem.spec.slices()["optimal_fiber_length"]
    p[sl] *= 0.55  # fibres become far too long relative to l0 -> fibre-length penalty
    assert float(objective.terms(p).penalty) > 0


@pytest.mark.parametrize("tendon", ["stiff", "elastic"])
def test_gradcheck_loss_wrt_unconstrained(tendon: str) -> None:
    problem = make_problem(n_mtus=2, n_dofs=1, n_calibration=1, n_validation=1, n_samples=30,
                           tendon=tendon, seed=5)
    objective = make_objective(problem.spec, problem.calibration, problem.config)
    spec = problem.spec
    z = spec.to_unconstrained(problem.truth * 1.03).clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: objective(spec.to_physical(v)), (z,),
                                    eps=1e-6, atol=1e-7, rtol=1e-4)


def test_prior_term_matches_its_formula_and_the_residuals() -> None:
    problem = make_problem(n_mtus=3, n_dofs=2, n_calibration=1, n_validation=1, n_samples=60,
                           tendon="stiff", seed=4)
    spec = problem.spec
    plain = make_objective(spec, problem.calibration, problem.config)
    weight = 0.7
    prior = make_objective(spec, problem.calibration, {**problem.config, "prior_weight": weight})
    p = torch.as_tensor(problem.truth * 1.04)
    expected = weight * np.mean(((p.numpy() - spec.initial) / (spec.upper - spec.lower)) ** 2)
    assert expected > 0
    got = float(prior.terms(p).penalty - plain.terms(p).penalty)
    assert got == pytest.approx(expected, rel=1e-12)
    torch.testing.assert_close((prior.all_residuals(p) ** 2).sum(), prior.terms(p).total)
    # The prior vanishes at the initial values, and the tracking term is unchanged.
    p0 = torch.as_tensor(spec.initial)
    assert float(prior.terms(p0).penalty) == pytest.approx(float(plain.terms(p0).penalty))
    assert float(prior.terms(p).tracking) == float(plain.terms(p).tracking)


def test_negative_prior_weight_is_refused() -> None:
    problem = make_problem(n_mtus=2, n_dofs=1, n_calibration=1, n_validation=1, n_samples=30,
                           tendon="stiff", seed=4)
    with pytest.raises(ValueError, match="prior_weight"):
        make_objective(problem.spec, problem.calibration, {**problem.config, "prior_weight": -1})


def test_gradcheck_loss_with_prior() -> None:
    problem = make_problem(n_mtus=2, n_dofs=1, n_calibration=1, n_validation=1, n_samples=30,
                           tendon="stiff", seed=6)
    objective = make_objective(problem.spec, problem.calibration,
                               {**problem.config, "prior_weight": 2.0})
    spec = problem.spec
    z = spec.to_unconstrained(problem.truth * 0.97).clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: objective(spec.to_physical(v)), (z,),
                                    eps=1e-6, atol=1e-7, rtol=1e-4)
