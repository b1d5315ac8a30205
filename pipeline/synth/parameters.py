"""Generic and hidden true muscle parameters of a demo subject.

Generic values come from the OpenSim model (optimal fibre length, tendon slack length, maximum
isometric force, pennation at optimal length, fibre damping) plus the config's initial activation
parameters. A subject's true parameters perturb them:

* optimal fibre length x U(0.92, 1.08), at least 3 % away from 1;
* tendon slack length x U(0.95, 1.05), the change capped at 10 % of the optimal fibre length (a
  long tendon would otherwise move the fibre far off its operating range);
* strength U(0.7, 1.4), applied to the maximum isometric force, one draw per strength group
  (``strength_groups``: functional groups such as the elbow flexors or the quadriceps; an MTU in
  no group gets its own draw);
* c1, c2 U(-0.75, -0.25) (CEINMS bounds [-0.95, -0.05]), shape factor U(-2.5, -0.5) (in (-3, 0)),
  at least 25 % away from the initial value (a truth next to the initial guess would make its
  recovery a coin flip of the noise), one draw per subject shared by all its MTUs
  (``shared_activation=True``, the demo's default):
  with envelope noise, a few trials cannot identify activation dynamics per muscle (c1 and c2
  trade off almost exactly, and the shape factor against strength), so the demo calibrates them
  with ``activation_sharing: global`` and its truth has one set per subject.

Damping, pennation and the electromechanical delay stay at the model's / config's values (the
pipeline does not calibrate them by default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import opensim
import torch

from pipeline.nms.model import MuscleParameters

PARAMETER_KEYS = ("optimal_fiber_length_m", "tendon_slack_length_m", "max_isometric_force_n",
                  "c1", "c2", "shape_factor")


@dataclass(frozen=True)
class SubjectMuscles:
    """Per-MTU parameter arrays ``(muscle,)`` in the order of ``names``."""

    names: tuple[str, ...]
    optimal_fiber_length_m: np.ndarray
    tendon_slack_length_m: np.ndarray
    max_isometric_force_n: np.ndarray  # generic (strength 1)
    strength: np.ndarray
    c1: np.ndarray
    c2: np.ndarray
    shape_factor: np.ndarray
    pennation_at_optimal_rad: np.ndarray
    damping: np.ndarray

    def to_nms(self) -> MuscleParameters:
        def t(x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x, dtype=float), dtype=torch.float64)

        return MuscleParameters(
            c1=t(self.c1), c2=t(self.c2), shape_factor=t(self.shape_factor),
            optimal_fiber_length_m=t(self.optimal_fiber_length_m),
            tendon_slack_length_m=t(self.tendon_slack_length_m), strength=t(self.strength),
            damping=t(self.damping), max_isometric_force_n=t(self.max_isometric_force_n),
            pennation_at_optimal_rad=t(self.pennation_at_optimal_rad),
        )

    def as_json(self) -> dict[str, dict[str, float]]:
        """truth.json per-MTU values; ``max_isometric_force_n`` is the effective force."""
        out = {}
        for i, name in enumerate(self.names):
            out[name] = {
                "optimal_fiber_length_m": float(self.optimal_fiber_length_m[i]),
                "tendon_slack_length_m": float(self.tendon_slack_length_m[i]),
                "max_isometric_force_n": float(self.max_isometric_force_n[i] * self.strength[i]),
                "c1": float(self.c1[i]),
                "c2": float(self.c2[i]),
                "shape_factor": float(self.shape_factor[i]),
                "strength": float(self.strength[i]),
            }
        return out


def generic_muscles(model: opensim.Model, names: Sequence[str], *, c1: float, c2: float,
                    shape_factor: float) -> SubjectMuscles:
    """The model's own muscle properties with the given initial activation parameters."""
    muscles = model.getMuscles()
    rows = []
    for name in names:
        muscle = opensim.DeGrooteFregly2016Muscle.safeDownCast(muscles.get(name))
        damping = muscle.get_fiber_damping() if muscle is not None else 0.0
        base = muscles.get(name)
        rows.append((base.getOptimalFiberLength(), base.getTendonSlackLength(),
                     base.getMaxIsometricForce(), base.getPennationAngleAtOptimalFiberLength(),
                     damping))
    arr = np.array(rows, dtype=float)
    n = len(names)
    return SubjectMuscles(
        names=tuple(names), optimal_fiber_length_m=arr[:, 0], tendon_slack_length_m=arr[:, 1],
        max_isometric_force_n=arr[:, 2], strength=np.ones(n), c1=np.full(n, c1),
        c2=np.full(n, c2), shape_factor=np.full(n, shape_factor),
        pennation_at_optimal_rad=arr[:, 3], damping=arr[:, 4],
    )


def perturbed_muscles(generic: SubjectMuscles, rng: np.random.Generator, *,
                      shared_activation: bool = True,
                      strength_groups: Mapping[str, Sequence[str]] | None = None,
                      ) -> SubjectMuscles:
    """Hidden true parameters of one subject (see the module docstring for the ranges)."""
    n = len(generic.names)
    group_of = {m: g for g, members in (strength_groups or {}).items() for m in members}
    strength_labels = [group_of.get(name, name) for name in generic.names]
    n_act = 1 if shared_activation else n
    l0_factor = rng.uniform(0.92, 1.08, n)
    l0_factor = np.where(np.abs(l0_factor - 1.0) < 0.03, 1.0 + 0.03 * np.sign(
        l0_factor - 1.0 + 1e-12), l0_factor)
    l0 = generic.optimal_fiber_length_m * l0_factor
    delta_lts = generic.tendon_slack_length_m * rng.uniform(-0.05, 0.05, n)
    delta_lts = np.clip(delta_lts, -0.1 * l0, 0.1 * l0)
    return SubjectMuscles(
        names=generic.names,
        optimal_fiber_length_m=l0,
        tendon_slack_length_m=generic.tendon_slack_length_m + delta_lts,
        max_isometric_force_n=generic.max_isometric_force_n.copy(),
        strength=_per_label(strength_labels, rng.uniform(0.7, 1.4, len(set(strength_labels)))),
        c1=np.broadcast_to(rng.uniform(-0.75, -0.25, n_act), (n,)).copy(),
        c2=np.broadcast_to(rng.uniform(-0.75, -0.25, n_act), (n,)).copy(),
        shape_factor=np.broadcast_to(_away_from(rng.uniform(-2.5, -0.5, n_act),
                                                generic.shape_factor[:n_act], 0.25),
                                     (n,)).copy(),
        pennation_at_optimal_rad=generic.pennation_at_optimal_rad.copy(),
        damping=generic.damping.copy(),
    )


def _away_from(values: np.ndarray, reference: np.ndarray, fraction: float) -> np.ndarray:
    """``values`` moved to at least ``fraction * |reference|`` from ``reference`` (same side)."""
    gap = fraction * np.abs(reference)
    diff = values - reference
    side = np.where(diff >= 0.0, 1.0, -1.0)
    return np.where(np.abs(diff) < gap, reference + side * gap, values)


def _per_label(labels: Sequence[str], draws: np.ndarray) -> np.ndarray:
    """One value per entry of ``labels``: the ``k``-th distinct label (in order) gets
    ``draws[k]``."""
    distinct = list(dict.fromkeys(labels))
    value = dict(zip(distinct, draws, strict=True))
    return np.array([value[label] for label in labels], dtype=float)
