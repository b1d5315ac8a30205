"""Synthetic synergy problems: the nms reference problem driven by excitations from known synergies.

Built on :func:`pipeline.calibrate.synthetic.make_problem` (geometry, true parameters, spec,
calibration/validation split); its excitations are replaced by ``W_true @ H_true`` (clipped to
[0, 1]) and the ID moments recomputed with the true parameters, so a calibration that recovers
the truth tracks the moments exactly. Used by the tests and the channel-removal experiment.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.calibrate.losses import Objective, penalties_from_config
from pipeline.calibrate.problem import TrialBatch
from pipeline.calibrate.synthetic import SyntheticProblem, make_problem
from pipeline.nms.model import TendonModel

__all__ = ["SynergyProblem", "make_synergy_problem"]


@dataclass(frozen=True)
class SynergyProblem:
    """A synthetic calibration problem with its true synergies."""

    problem: SyntheticProblem
    weightings: np.ndarray  #: true (muscle, synergy), max 1 per synergy
    primitives: np.ndarray  #: true (trial, synergy, time), calibration trials then validation


def _smooth_positive(rng: np.random.Generator, shape: tuple[int, ...], *, width: int
                     ) -> np.ndarray:
    """Smooth, non-negative, unit-scale signals along the last axis (sigmoid of smoothed noise)."""
    white = rng.standard_normal((*shape[:-1], shape[-1] + 6 * width))
    kernel = np.exp(-0.5 * (np.arange(-3 * width, 3 * width + 1) / width) ** 2)
    smooth = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), -1, white)
    smooth = smooth[..., :shape[-1]]
    smooth = (smooth - smooth.mean(axis=-1, keepdims=True)) / smooth.std(axis=-1, keepdims=True)
    return 0.8 / (1.0 + np.exp(-(3.0 * (smooth - 1.0))))


def make_synergy_problem(*, n_mtus: int = 10, n_dofs: int = 2, n_synergies: int = 3,
                         n_calibration: int = 3, n_validation: int = 2, n_samples: int = 300,
                         tendon: TendonModel = "stiff", seed: int = 0) -> SynergyProblem:
    """A reference problem whose excitations come from ``n_synergies`` known synergies.

    Each MTU loads mainly on synergy ``m % n_synergies`` (weighting 0.6-1) and slightly on the
    others (0-0.05); primitives are smooth, independent, non-negative bursts (0-0.8).
    """
    base = make_problem(n_mtus=n_mtus, n_dofs=n_dofs, n_calibration=n_calibration,
                        n_validation=n_validation, n_samples=n_samples, tendon=tendon, seed=seed)
    rng = np.random.default_rng(seed + 7919)
    weightings = rng.uniform(0.0, 0.05, (n_mtus, n_synergies))
    for m in range(n_mtus):
        weightings[m, m % n_synergies] = rng.uniform(0.6, 1.0)
    weightings /= weightings.max(axis=0)
    n_trials = n_calibration + n_validation
    primitives = _smooth_positive(rng, (n_trials, n_synergies, n_samples),
                                  width=max(1, int(round(0.08 / base.calibration.dt_s))))
    excitation = np.clip(np.einsum("ms,tsn->tmn", weightings, primitives), 0.0, 1.0)
    truth = torch.as_tensor(base.truth, dtype=torch.float64)
    batches: list[TrialBatch] = []
    for batch, sl in ((base.calibration, slice(0, n_calibration)),
                      (base.validation, slice(n_calibration, n_trials))):
        driven = dataclasses.replace(batch, excitation=torch.as_tensor(excitation[sl]))
        objective = Objective(base.spec, driven, tendon=tendon, emd_s=base.emd_s,
                              penalties=penalties_from_config(base.config.get("penalties")))
        with torch.no_grad():
            moments = objective.simulate(truth).moments_nm
        batches.append(dataclasses.replace(driven, id_moment_nm=moments.clone()))
    problem = dataclasses.replace(base, calibration=batches[0], validation=batches[1])
    return SynergyProblem(problem, weightings, primitives)
