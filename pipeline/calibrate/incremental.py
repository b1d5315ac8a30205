"""The objective for coordinate-wise optimisers: re-simulate only the muscles a move touches.

Simulated annealing (like CEINMS's) changes one parameter per evaluation; a muscle's parameters
touch only that muscle's activation, fibre state and force. :class:`IncrementalLoss` keeps every
muscle's outputs at the last evaluated point, simulates only the MTUs whose parameters differ
from it (one MTU for a per-muscle parameter, a group for a shared strength or a global activation
parameter), splices them in, and sums the moments and the loss with the objective's own
:meth:`~pipeline.calibrate.losses.Objective.terms_from_output`. The loss is the objective's, to
rounding: the same model code runs on a subset of independent muscles.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.calibrate.losses import MODEL_FAILURES, Objective
from pipeline.nms import ModelOutput, simulate

_PER_MUSCLE = ("activation", "fiber_length_m", "fiber_velocity_mps", "normalized_fiber_length",
               "normalized_fiber_velocity", "force_n", "tendon_force_n", "tendon_strain")


class IncrementalLoss:
    """``loss(p)`` of ``objective`` at physical ``p`` (numpy), ``inf`` where the model fails."""

    def __init__(self, objective: Objective) -> None:
        self.objective = objective
        spec = objective.spec
        n_mtus = len(spec.mtu_names)
        #: (n_free, n_mtus) True where free parameter k acts on MTU m
        touches = np.zeros((spec.n_free, n_mtus), dtype=bool)
        for kind, sl in spec.slices().items():
            block = spec.blocks[kind]
            for column, entry in zip(range(sl.start, sl.stop),
                                     np.flatnonzero(block.free_mask), strict=True):
                touches[column, np.asarray(block.index) == entry] = True
        self._touches = touches
        self._p: np.ndarray | None = None
        self._state: dict[str, torch.Tensor] = {}
        self.full_evaluations = 0
        self.partial_evaluations = 0

    def __call__(self, p: np.ndarray) -> float:
        p = np.asarray(p, dtype=float)
        with torch.no_grad():
            try:
                if self._p is None:
                    muscles = np.arange(self._touches.shape[1])
                else:
                    changed = p != self._p
                    muscles = np.flatnonzero(self._touches[changed].any(axis=0))
                self._update(p, muscles)
            except MODEL_FAILURES:
                self._p = None  # the cached state may be half updated
                return float("inf")
            out = self._output()
            total = float(self.objective.terms_from_output(out, torch.as_tensor(p)).total)
        return total if np.isfinite(total) else float("inf")

    def _update(self, p: np.ndarray, muscles: np.ndarray) -> None:
        objective, data = self.objective, self.objective.data
        if muscles.size == 0:
            self._p = p.copy()
            return
        full = objective.muscle_parameters(torch.as_tensor(p, dtype=torch.float64))
        everything = muscles.size == self._touches.shape[1]
        if everything:
            out = simulate(full, data.excitation, data.mtu_length_m, data.moment_arm_m,
                           dt_s=data.dt_s, tendon=objective.tendon, emd_s=objective.emd_s,
                           excitation_before=data.excitation_before)
            self._state = {name: getattr(out, name).clone() for name in _PER_MUSCLE}
            self.full_evaluations += 1
        else:
            idx = torch.as_tensor(muscles, dtype=torch.long)
            subset = full.__class__(**{k: v[idx] for k, v in full.as_dict().items()})
            before = (None if data.excitation_before is None
                      else data.excitation_before[:, idx])
            out = simulate(subset, data.excitation[:, idx], data.mtu_length_m[:, idx],
                           data.moment_arm_m[:, idx], dt_s=data.dt_s, tendon=objective.tendon,
                           emd_s=objective.emd_s, excitation_before=before)
            for name in _PER_MUSCLE:
                self._state[name][:, idx] = getattr(out, name)
            self.partial_evaluations += 1
        self._p = p.copy()

    def _output(self) -> ModelOutput:
        force = self._state["force_n"]
        moments = (self.objective.data.moment_arm_m * force.unsqueeze(2)).sum(dim=1)
        return ModelOutput(moments_nm=moments, **self._state)
