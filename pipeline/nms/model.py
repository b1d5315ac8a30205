"""The EMG-driven musculoskeletal model: excitations, MTU lengths and moment arms to joint moments.

Shapes: excitations, MTU lengths and every per-muscle output are ``(trial, muscle, time)``; moment
arms are ``(trial, muscle, dof, time)``; moments are ``(trial, dof, time)``; parameters are
``(muscle,)``. Everything runs in the dtype and on the device of the inputs (float64 on the CPU for
calibration; float32 works too).
"""

from __future__ import annotations

import dataclasses
from typing import Literal, NamedTuple

import torch

from pipeline.nms import curves
from pipeline.nms.activation import activation as compute_activation
from pipeline.nms.mtu import fiber_force_along_tendon, normalized_fiber_velocity
from pipeline.nms.tendon import elastic_fiber_kinematics, stiff_fiber_kinematics, tendon_strain

__all__ = ["DEFAULT_EMD_S", "ModelOutput", "MuscleParameters", "simulate"]

#: CEINMS's default electromechanical delay (paper 002 used 35 ms).
DEFAULT_EMD_S = 0.015

TendonModel = Literal["elastic", "stiff"]


@dataclasses.dataclass(frozen=True)
class MuscleParameters:
    """Per-muscle model parameters, each a ``(muscle,)`` tensor.

    Calibrated: ``c1``, ``c2`` (activation filter, CEINMS bounds [-0.95, -0.05]), ``shape_factor``
    (A in (-3, 0)), ``optimal_fiber_length_m``, ``tendon_slack_length_m``, ``strength`` (scales
    the maximum isometric force), ``damping`` (fibre damping on the normalised velocity; OpenSim's
    ``fiber_damping`` default is 0.0, 0.01 is usual for a well-posed elastic tendon at zero
    activation). Fixed: ``max_isometric_force_n`` and ``pennation_at_optimal_rad``.
    """

    c1: torch.Tensor
    c2: torch.Tensor
    shape_factor: torch.Tensor
    optimal_fiber_length_m: torch.Tensor
    tendon_slack_length_m: torch.Tensor
    strength: torch.Tensor
    damping: torch.Tensor
    max_isometric_force_n: torch.Tensor
    pennation_at_optimal_rad: torch.Tensor

    def __post_init__(self) -> None:
        shapes = {field.name: tuple(getattr(self, field.name).shape)
                  for field in dataclasses.fields(self)}
        if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 1:
            raise ValueError(f"every muscle parameter must have the same shape (muscle,); got "
                             f"{shapes}")

    @property
    def n_muscles(self) -> int:
        return int(self.c1.shape[0])

    def to(self, *, dtype: torch.dtype | None = None,
           device: torch.device | str | None = None) -> MuscleParameters:
        """Copy with every tensor cast to ``dtype`` and moved to ``device``."""
        return MuscleParameters(**{name: value.to(dtype=dtype, device=device)
                                   for name, value in self.as_dict().items()})

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def replace(self, **changes: torch.Tensor) -> MuscleParameters:
        """Copy with some fields replaced (e.g. by calibrated tensors)."""
        return dataclasses.replace(self, **changes)


class ModelOutput(NamedTuple):
    """Joint moments and every intermediate. Per-muscle fields are ``(trial, muscle, time)``."""

    moments_nm: torch.Tensor  #: (trial, dof, time)
    activation: torch.Tensor
    fiber_length_m: torch.Tensor
    fiber_velocity_mps: torch.Tensor
    normalized_fiber_length: torch.Tensor
    normalized_fiber_velocity: torch.Tensor
    force_n: torch.Tensor  #: fibre force along the tendon (the MTU force used for moments)
    tendon_force_n: torch.Tensor  #: tendon force from the tendon curve (= force_n when stiff)
    tendon_strain: torch.Tensor  #: negative when the tendon is slack (penalise in calibration)


def _check_shapes(params: MuscleParameters, excitation: torch.Tensor,
                  mtu_length_m: torch.Tensor, moment_arm_m: torch.Tensor) -> None:
    if excitation.ndim != 3:
        raise ValueError(f"excitation must be (trial, muscle, time), got {tuple(excitation.shape)}")
    if mtu_length_m.shape != excitation.shape:
        raise ValueError(f"mtu_length_m {tuple(mtu_length_m.shape)} must match excitation "
                         f"{tuple(excitation.shape)}")
    trial, muscle, time = excitation.shape
    if moment_arm_m.ndim != 4 or moment_arm_m.shape[:2] != (trial, muscle) or (
        moment_arm_m.shape[3] != time
    ):
        raise ValueError(f"moment_arm_m must be (trial, muscle, dof, time) = ({trial}, {muscle}, "
                         f"dof, {time}), got {tuple(moment_arm_m.shape)}")
    if params.n_muscles != muscle:
        raise ValueError(f"{params.n_muscles} muscle parameters for {muscle} muscles")


def simulate(
    params: MuscleParameters,
    excitation: torch.Tensor,
    mtu_length_m: torch.Tensor,
    moment_arm_m: torch.Tensor,
    *,
    dt_s: float,
    tendon: TendonModel = "elastic",
    emd_s: float = DEFAULT_EMD_S,
    tendon_strain_at_one_norm_force: float = curves.TENDON_STRAIN_AT_ONE,
    excitation_before: torch.Tensor | None = None,
) -> ModelOutput:
    """Run the model: excitation ``(trial, muscle, time)`` to moments ``(trial, dof, time)``.

    Args:
        params: per-muscle parameters (same dtype and device as the signals).
        excitation: ``(trial, muscle, time)`` in [0, 1].
        mtu_length_m: ``(trial, muscle, time)``.
        moment_arm_m: ``(trial, muscle, dof, time)``.
        dt_s: sample interval in seconds.
        tendon: ``"elastic"`` (Rosenbrock) or ``"stiff"``.
        emd_s: electromechanical delay in seconds (rounded to samples).
        tendon_strain_at_one_norm_force: ``eps0`` of the tendon curve.
        excitation_before: ``(trial, muscle, n_before)`` excitations recorded just before the
            window, used by the electromechanical delay (None: repeat the first sample).

    Differentiable w.r.t. every tensor of ``params`` and every input signal.
    """
    _check_shapes(params, excitation, mtu_length_m, moment_arm_m)
    act = compute_activation(excitation, params.c1, params.c2, params.shape_factor,
                             dt_s=dt_s, emd_s=emd_s, before=excitation_before)
    geometry = {
        "optimal_fiber_length_m": params.optimal_fiber_length_m,
        "tendon_slack_length_m": params.tendon_slack_length_m,
        "pennation_at_optimal_rad": params.pennation_at_optimal_rad,
    }
    if tendon == "stiff":
        fiber_length, fiber_velocity = stiff_fiber_kinematics(mtu_length_m, **geometry, dt_s=dt_s)
    elif tendon == "elastic":
        fiber_length, fiber_velocity = elastic_fiber_kinematics(
            act, mtu_length_m, **geometry, damping=params.damping, dt_s=dt_s,
            tendon_strain_at_one_norm_force=tendon_strain_at_one_norm_force,
        )
    else:
        raise ValueError(f"tendon must be 'elastic' or 'stiff', got {tendon!r}")
    force = fiber_force_along_tendon(
        act, fiber_length, fiber_velocity,
        optimal_fiber_length_m=params.optimal_fiber_length_m,
        pennation_at_optimal_rad=params.pennation_at_optimal_rad,
        max_isometric_force_n=params.max_isometric_force_n,
        strength=params.strength,
        damping=params.damping,
    )
    strain = tendon_strain(mtu_length_m, fiber_length, **geometry)
    if tendon == "stiff":
        tendon_force = force
    else:
        max_force = (params.max_isometric_force_n * params.strength).unsqueeze(-1)
        tendon_force = max_force * curves.tendon_force_length(
            1.0 + strain, strain_at_one_norm_force=tendon_strain_at_one_norm_force
        )
    moments = (moment_arm_m * force.unsqueeze(2)).sum(dim=1)  # faster than einsum's bmm here
    return ModelOutput(
        moments_nm=moments,
        activation=act,
        fiber_length_m=fiber_length,
        fiber_velocity_mps=fiber_velocity,
        normalized_fiber_length=fiber_length / params.optimal_fiber_length_m.unsqueeze(-1),
        normalized_fiber_velocity=normalized_fiber_velocity(
            fiber_velocity, optimal_fiber_length_m=params.optimal_fiber_length_m
        ),
        force_n=force,
        tendon_force_n=tendon_force,
        tendon_strain=strain,
    )
