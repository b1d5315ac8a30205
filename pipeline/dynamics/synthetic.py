"""Motion-identification problems with known truth (tests and ``bench dynamics``).

A skeleton with perturbed inertial parameters moves along smooth multi-sine motions; a synthetic
muscle model (:func:`pipeline.calibrate.synthetic.make_problem`) acts on its coordinates; a
measured external load closes the equations with the truth, so the muscle parameters and the
identifiable inertial combinations are known. Optional noise: multiplicative white noise on the
EMG envelopes and white joint-angle noise, low-passed and differentiated as a pipeline would.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.calibrate.losses import Objective
from pipeline.calibrate.problem import TrialBatch
from pipeline.calibrate.synthetic import (
    SyntheticProblem,
    make_problem,
    perturbed_start,
    recovery_errors,
)
from pipeline.dynamics import skeleton as sk
from pipeline.dynamics.identify import (
    EquationError,
    EquationErrorTracking,
    MotionTrials,
    identify,
)
from pipeline.dynamics.skeleton import Skeleton


@dataclass(frozen=True)
class MotionProblem:
    skeleton: Skeleton
    muscles: SyntheticProblem
    motion: MotionTrials
    pi_true: torch.Tensor  # (n_bodies, 10)


def multisine_motion(skeleton: Skeleton, n_trials: int, n_time: int, dt_s: float, seed: int):
    """Smooth multi-sine motion with exact velocities and accelerations."""
    rng = np.random.default_rng(seed)
    shape = (n_trials, 1, skeleton.n_coordinates, 3)
    amp, freq, phase = (torch.tensor(rng.uniform(lo, hi, shape))
                        for lo, hi in ((0.3, 1.0), (0.5, 3.0), (0.0, 6.0)))
    t = (torch.arange(n_time, dtype=torch.float64) * dt_s)[None, :, None, None]
    w = 2 * np.pi * freq
    return ((amp * torch.sin(w * t + phase)).sum(-1), (amp * w * torch.cos(w * t + phase)).sum(-1),
            (-amp * w * w * torch.sin(w * t + phase)).sum(-1))


def make_motion_problem(skeleton: Skeleton, *, n_mtus: int = 6, n_samples: int = 200,
                        seed: int = 0) -> MotionProblem:
    """Two calibration trials over every coordinate of ``skeleton``; inertial parameters
    perturbed by N(0, 10 %) from the model's."""
    prob = make_problem(n_mtus=n_mtus, n_dofs=skeleton.n_coordinates, n_calibration=2,
                        n_validation=1, n_samples=n_samples, seed=seed)
    objective = Objective(prob.spec, prob.calibration, tendon=prob.tendon, emd_s=prob.emd_s)
    with torch.no_grad():
        muscle = objective.simulate(torch.tensor(prob.truth)).moments_nm.transpose(1, 2)
    q, qd, qdd = multisine_motion(skeleton, 2, muscle.shape[1], prob.calibration.dt_s, seed + 3)
    rng = np.random.default_rng(seed + 5)
    pi_true = skeleton.inertial * torch.tensor(
        1 + 0.1 * rng.standard_normal(skeleton.inertial.shape))
    external = sk.inverse_dynamics(skeleton, q, qd, qdd, inertial=pi_true) - muscle
    return MotionProblem(skeleton, prob, MotionTrials(q, qd, qdd, external,
                                                      prob.calibration.mask), pi_true)


def noisy(problem: MotionProblem, *, emg_rel_sd: float, angle_sd_deg: float,
          cutoff_hz: float = 12.0, edge_samples: int = 10, seed: int = 11
          ) -> tuple[MotionTrials, TrialBatch]:
    """The motion and muscle data with noise: EMG envelopes x (1 + N(0, emg_rel_sd)) and joint
    angles + N(0, angle_sd_deg), low-passed at ``cutoff_hz`` (2nd-order Butterworth, both ways)
    and differentiated twice; ``edge_samples`` at each end are masked out."""
    from scipy.signal import butter, filtfilt

    rng = np.random.default_rng(seed)
    batch = problem.muscles.calibration
    motion = problem.motion
    dt = batch.dt_s
    b, a = butter(2, cutoff_hz / (0.5 / dt))
    q = filtfilt(b, a, motion.q.numpy() + np.deg2rad(angle_sd_deg)
                 * rng.standard_normal(motion.q.shape), axis=1, padlen=50).copy()
    qd = np.gradient(q, dt, axis=1, edge_order=2)
    qdd = np.gradient(qd, dt, axis=1, edge_order=2)
    excitation = (batch.excitation * torch.tensor(
        1 + emg_rel_sd * rng.standard_normal(batch.excitation.shape))).clamp(0, 1)
    mask = motion.mask.clone()
    mask[:, :edge_samples] = False
    mask[:, -edge_samples:] = False
    return (MotionTrials(torch.tensor(q), torch.tensor(qd), torch.tensor(qdd), motion.external,
                         mask),
            dataclasses.replace(batch, excitation=excitation, mask=mask))


def recovery(problem: MotionProblem, *, emg_rel_sd: float = 0.0, angle_sd_deg: float = 0.0,
             cutoff_hz: float = 12.0, start_seed: int = 1, max_evaluations: int = 60) -> dict:
    """Identify from N(truth, 10 %) muscle guesses; errors, standard errors and their coverage."""
    prob = problem.muscles
    motion, batch = problem.motion, prob.calibration
    if emg_rel_sd > 0 or angle_sd_deg > 0:
        motion, batch = noisy(problem, emg_rel_sd=emg_rel_sd, angle_sd_deg=angle_sd_deg,
                              cutoff_hz=cutoff_hz)
    skel = problem.skeleton
    start = time.perf_counter()
    ee_problem = EquationError(skel, motion, skel.coordinates)
    objective = Objective(prob.spec, batch, tendon=prob.tendon, emd_s=prob.emd_s,
                          tracking=EquationErrorTracking(ee_problem))
    solved, fit, u = identify(ee_problem, objective,
                              perturbed_start(prob.spec, prob.truth, seed=start_seed),
                              max_evaluations=max_evaluations)
    wall = time.perf_counter() - start
    muscle_error = np.concatenate(list(recovery_errors(prob.spec, solved.p, prob.truth).values()))
    basis = ee_problem.basis
    truth = basis @ problem.pi_true.reshape(-1)
    estimate = basis @ fit.pi.reshape(-1)
    seen = u.muscle_identifiable
    z = np.concatenate([np.abs(solved.p - prob.truth)[seen] / u.muscle_se[seen],
                        np.abs((estimate - truth).numpy()) / u.combination_se])
    return {"emg_rel_sd": emg_rel_sd, "angle_sd_deg": angle_sd_deg, "cutoff_hz": cutoff_hz,
            "muscle_parameters": int(prob.spec.n_free),
            "muscle_mean_error_pct": float(muscle_error.mean()),
            "muscle_median_error_pct": float(np.median(muscle_error)),
            "muscle_unidentifiable": int((~seen).sum()),
            "inertial_combinations": int(ee_problem.identifiability.rank),
            "inertial_parameters": int(10 * skel.n_bodies),
            "inertial_combination_rel_error": float((estimate - truth).norm() / truth.norm()),
            "within_3se_fraction": float(np.mean(z < 3.0)),
            "within_2se_fraction": float(np.mean(z < 2.0)),
            "autocorrelation_time_samples": float(u.autocorrelation_time),
            "standard_errors_finite": bool(np.isfinite(u.muscle_se[seen]).all()
                                           and np.isfinite(u.combination_se).all()),
            "evaluations": int(solved.evaluations), "wall_s": wall}
