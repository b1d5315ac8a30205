"""Validation of synergy-hybrid calibration: excitations for unrecorded MTUs on held-out trials.

Validation trials were not part of calibration, so they have no primitives. Per validation
trial:

1. fit trial-specific primitives ``H`` ``(synergy, time)`` to the recorded channels with the
   calibrated weightings ``W_rec`` held fixed: non-negative least squares per time sample,
   ``min_{H[:, i] >= 0} ||e_rec[:, i] - W_rec H[:, i]||²`` (``method="nnls"``, the default; exact),
   or Lee-Seung multiplicative updates on ``H`` only (``method="multiplicative"``);
2. synthesise the unrecorded excitations ``W_unrec @ H``, clipped to [0, 1] (the calibration
   penalised values outside; execution never sees them);
3. drive the recorded MTUs with their recorded excitations and the unrecorded ones with the
   synthesised excitations, run the model open loop with the calibrated parameters, and compute
   RMSE and R² per DOF against inverse dynamics, as for the other methods.

Padded samples (trials of different lengths) are fitted too but masked out of the metrics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pipeline.calibrate.execute import batch_metrics, execute
from pipeline.calibrate.losses import Objective
from pipeline.calibrate.problem import TrialBatch
from pipeline.nms import ModelOutput
from pipeline.synergies.nmf import fit_primitives, vaf

__all__ = ["SynthesisedTrials", "evaluate", "synthesise_unrecorded"]


@dataclass(frozen=True)
class SynthesisedTrials:
    """A batch whose unrecorded rows hold synthesised excitations, and how they were made."""

    batch: TrialBatch  #: excitation: recorded rows as recorded, unrecorded rows synthesised
    primitives: np.ndarray  #: (trial, synergy, time) fitted with W_rec fixed
    synthesised: np.ndarray  #: (trial, unrecorded, time), clipped to [0, 1]
    unrecorded: tuple[str, ...]
    reconstruction_vaf: tuple[float, ...]  #: per trial, VAF of W_rec H vs recorded channels


def synthesise_unrecorded(
    batch: TrialBatch,
    weightings: np.ndarray,
    /,
    *,
    unrecorded: Sequence[str],
    method: str = "nnls",
) -> SynthesisedTrials:
    """Fill the unrecorded rows of ``batch`` from synergies (module docstring, steps 1-2).

    ``weightings`` is ``(muscle, synergy)`` with rows in ``batch.mtu_names`` order.
    """
    weightings = np.asarray(weightings, dtype=float)
    if weightings.shape[0] != len(batch.mtu_names):
        raise ValueError(f"weightings have {weightings.shape[0]} rows for "
                         f"{len(batch.mtu_names)} MTUs")
    unrec_set = set(unrecorded)
    rec_idx = [i for i, m in enumerate(batch.mtu_names) if m not in unrec_set]
    unrec_idx = [i for i, m in enumerate(batch.mtu_names) if m in unrec_set]
    excitation = batch.excitation.numpy().copy()
    primitives = np.empty((excitation.shape[0], weightings.shape[1], excitation.shape[2]))
    scores = []
    for k in range(excitation.shape[0]):
        recorded = np.nan_to_num(excitation[k, rec_idx])
        primitives[k] = fit_primitives(recorded, weightings[rec_idx], method=method)
        n = len(batch.time_s[k])
        scores.append(vaf(recorded[:, :n], weightings[rec_idx] @ primitives[k, :, :n]))
    synthesised = np.clip(np.einsum("ms,tsn->tmn", weightings[unrec_idx], primitives), 0.0, 1.0)
    excitation[:, unrec_idx] = synthesised
    filled = dataclasses.replace(batch, excitation=torch.as_tensor(excitation))
    return SynthesisedTrials(filled, primitives, synthesised,
                             tuple(batch.mtu_names[i] for i in unrec_idx), tuple(scores))


def evaluate(objective: Objective, p: np.ndarray, batch: TrialBatch, /,
             ) -> tuple[dict[str, Any], ModelOutput]:
    """Open-loop execution of ``batch`` at free parameters ``p``: ``(metrics, output)``.

    Thin adapter over :func:`pipeline.calibrate.execute.execute` and
    :func:`~pipeline.calibrate.execute.batch_metrics` (``{"trials": {trial: {dof: {"rmse_nm",
    "r2"}}}, "mean_rmse_nm", "mean_r2"}`` over the valid samples of each trial).
    """
    with torch.no_grad():
        params = objective.muscle_parameters(torch.as_tensor(p, dtype=torch.float64))
    output = execute(params, batch, tendon=objective.tendon, emd_s=objective.emd_s)
    return batch_metrics(batch, output), output
