"""Muscle and tendon curves of OpenSim's ``DeGrooteFregly2016Muscle``.

Every curve is a pure, state-free torch function of a normalised quantity. The constants are the
published De Groote et al. (2016) values as used by OpenSim 4.6 (``active_force_width_scale = 1``,
``passive_fiber_strain_at_one_norm_force = 0.6``, ``tendon_strain_at_one_norm_force = 0.049``).
They are held in float64 at module level and used in the input's dtype on the input's device.

Departures from the paper, all shared with OpenSim:

* the passive curve is offset so that it is zero at a normalised fibre length of 0.2 (OpenSim's
  minimum fibre length) and is slightly negative below it;
* the tendon curve is *not* clipped at slack length: below slack (strain < 0) it continues the same
  exponential smoothly towards ``-c3 = -0.2``. The elastic-tendon model relies on this smooth
  extension (paper 002, appendix A); calibration penalises the negative strain instead.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "ACTIVE_FL_COEFFICIENTS",
    "FV_D1",
    "FV_D2",
    "FV_D3",
    "FV_D4",
    "MAX_CONTRACTION_VELOCITY_PER_S",
    "PASSIVE_KPE",
    "PASSIVE_MIN_NORM_FIBER_LENGTH",
    "PASSIVE_STRAIN_AT_ONE",
    "TENDON_C1",
    "TENDON_C2",
    "TENDON_C3",
    "TENDON_STRAIN_AT_ONE",
    "active_force_length",
    "active_force_length_and_slope",
    "force_velocity",
    "force_velocity_and_slope",
    "force_velocity_inverse",
    "passive_force_length",
    "passive_force_length_and_slope",
    "tendon_force_length",
    "tendon_force_length_inverse",
    "tendon_stiffness_exponent",
]

#: Rows (b1, b2, b3, b4) of the three Gaussian-like terms of the active force-length curve.
ACTIVE_FL_COEFFICIENTS = np.array(
    [
        [0.8150671134243542, 1.055033428970575, 0.162384573599574, 0.063303448465465],
        [0.433004984392647, 0.716775413397760, -0.029947116970696, 0.200356847296188],
        [0.1, 1.0, 0.5 * math.sqrt(0.5), 0.0],
    ],
    dtype=np.float64,
)
PASSIVE_KPE = 4.0
PASSIVE_STRAIN_AT_ONE = 0.6
PASSIVE_MIN_NORM_FIBER_LENGTH = 0.2
FV_D1 = -0.3211346127989808
FV_D2 = -8.149
FV_D3 = -0.374
FV_D4 = 0.8825327733249912
TENDON_C1 = 0.2
TENDON_C2 = 1.0
TENDON_C3 = 0.2
TENDON_STRAIN_AT_ONE = 0.049
#: OpenSim's default maximum contraction velocity, in optimal fibre lengths per second.
MAX_CONTRACTION_VELOCITY_PER_S = 10.0

_PASSIVE_OFFSET = math.exp(
    PASSIVE_KPE * (PASSIVE_MIN_NORM_FIBER_LENGTH - 1.0) / PASSIVE_STRAIN_AT_ONE
)
_PASSIVE_DENOMINATOR = math.exp(PASSIVE_KPE) - _PASSIVE_OFFSET
_ACTIVE_FL_FLOATS = tuple(tuple(float(b) for b in row) for row in ACTIVE_FL_COEFFICIENTS)

#: A torch tensor or a numpy array: the ``*_and_slope`` functions take either (torch for the
#: model's autograd nodes, numpy for the array Jacobian of the CEINMS objective) and run the same
#: operations, so their values agree to the rounding of the two libraries' kernels.
Array = TypeVar("Array", torch.Tensor, np.ndarray)


def array_module(x: Any) -> Any:
    """``numpy`` for a numpy array, else ``torch``."""
    return np if isinstance(x, np.ndarray) else torch


def asinh(x: torch.Tensor) -> torch.Tensor:
    """``asinh(x)`` as ``sign(x) log1p(|x| + x^2 / (1 + sqrt(1 + x^2)))``: exact to rounding and,
    in float64 on the CPU, several times faster than ``torch.asinh``."""
    return _asinh_and_root(x)[0]


def _asinh_and_root(x: Array) -> tuple[Array, Array]:
    """``(asinh(x), sqrt(1 + x^2))``, the root being the reciprocal of asinh's slope (a tensor
    or a numpy array)."""
    xp = array_module(x)
    square = x * x
    root = xp.sqrt(1.0 + square)
    return xp.copysign(xp.log1p(abs(x) + square / (1.0 + root)), x), root


def tendon_stiffness_exponent(strain_at_one_norm_force: float = TENDON_STRAIN_AT_ONE) -> float:
    """``kT = ln((1 + c3) / c1) / (1 + eps0 - c2)``: the tendon curve's exponent."""
    if not strain_at_one_norm_force > 0.0:
        raise ValueError(f"tendon strain at one normalised force must be > 0, got "
                         f"{strain_at_one_norm_force}")
    return math.log((1.0 + TENDON_C3) / TENDON_C1) / (1.0 + strain_at_one_norm_force - TENDON_C2)


def active_force_length(norm_fiber_length: torch.Tensor) -> torch.Tensor:
    """Active force-length multiplier ``fa(l~)``, a sum of three Gaussian-like terms.

    Domain: any real normalised fibre length (the second term's width ``b3 + b4 l~`` vanishes at
    ``l~ = 0.1495``, where the term is exactly 0 in the limit; avoid that single point).
    Range: (0, 1]; equals 1 at ``l~ = 1``. Any shape; returns the input's shape.
    """
    terms = []
    for b1, b2, b3, b4 in _ACTIVE_FL_FLOATS:
        q = (norm_fiber_length - b2) / (b3 + b4 * norm_fiber_length) if b4 else (
            (norm_fiber_length - b2) * (1.0 / b3))
        terms.append(b1 * torch.exp(-0.5 * q * q))
    return terms[0] + terms[1] + terms[2]


def active_force_length_and_slope(norm_fiber_length: Array) -> tuple[Array, Array]:
    """:func:`active_force_length` and its derivative ``dfa/dl~``: each term ``b1 exp(-q^2 / 2)``
    with ``q = (l~ - b2) / (b3 + b4 l~)`` has the slope ``-term q (b3 + b4 b2) / (b3 + b4 l~)^2``.
    A tensor or a numpy array. Works in place on its own temporaries: for values outside
    autograd (fused derivatives)."""
    xp = array_module(norm_fiber_length)
    value: Any = None
    slope: Any = None
    for b1, b2, b3, b4 in _ACTIVE_FL_FLOATS:
        q = norm_fiber_length - b2
        if b4:
            inverse_width = norm_fiber_length * b4
            inverse_width += b3
            xp.reciprocal(inverse_width, out=inverse_width)
            q *= inverse_width
            xp.square(inverse_width, out=inverse_width)
            inverse_width *= b3 + b4 * b2
            dq: Array | float = inverse_width
        else:
            q *= 1.0 / b3
            dq = 1.0 / b3
        term = xp.square(q)
        term *= -0.5
        xp.exp(term, out=term)
        term *= b1
        q *= term
        q *= dq
        if value is None:
            value, slope = term, xp.negative(q, out=q)
        else:
            value += term
            slope -= q
    assert value is not None and slope is not None
    return value, slope


def passive_force_length(norm_fiber_length: torch.Tensor) -> torch.Tensor:
    """Passive force-length multiplier ``fp(l~)`` (exponential, OpenSim's offset form).

    ``fp = (exp(kPE (l~ - 1) / e0) - off) / (exp(kPE) - off)`` with ``off`` making ``fp(0.2) = 0``.
    Domain: any real. Range: (-9.0e-5, inf); 1 at ``l~ = 1 + e0 = 1.6``.
    """
    scaled = PASSIVE_KPE * (norm_fiber_length - 1.0) / PASSIVE_STRAIN_AT_ONE
    return (torch.exp(scaled) - _PASSIVE_OFFSET) / _PASSIVE_DENOMINATOR


def passive_force_length_and_slope(norm_fiber_length: Array) -> tuple[Array, Array]:
    """:func:`passive_force_length` and its derivative ``dfp/dl~`` (a tensor or a numpy array;
    in place on its temporaries: outside autograd)."""
    xp = array_module(norm_fiber_length)
    grow = norm_fiber_length - 1.0
    grow *= PASSIVE_KPE / PASSIVE_STRAIN_AT_ONE
    xp.exp(grow, out=grow)
    value = grow - _PASSIVE_OFFSET
    value *= 1.0 / _PASSIVE_DENOMINATOR
    grow *= PASSIVE_KPE / PASSIVE_STRAIN_AT_ONE / _PASSIVE_DENOMINATOR
    return value, grow


def force_velocity(norm_fiber_velocity: torch.Tensor) -> torch.Tensor:
    """Force-velocity multiplier ``fv(v~) = d1 asinh(d2 v~ + d3) + d4``.

    ``v~`` is the fibre velocity over ``max_contraction_velocity * optimal_fiber_length``
    (lengthening positive). Domain: any real (physiological range [-1, 1]). Range: any real;
    ``fv(-1) = 0``, ``fv(0) = 1``, ``fv(1) = 1.794``. ``asinh`` is the closed form of OpenSim's
    ``log(x + sqrt(x^2 + 1))``.
    """
    return FV_D1 * asinh(FV_D2 * norm_fiber_velocity + FV_D3) + FV_D4


def force_velocity_and_slope(norm_fiber_velocity: Array) -> tuple[Array, Array]:
    """:func:`force_velocity` and its derivative ``dfv/dv~ = d1 d2 / sqrt(1 + x^2)``,
    ``x = d2 v~ + d3`` (one square root for both; a tensor or a numpy array)."""
    xp = array_module(norm_fiber_velocity)
    arcsinh, root = _asinh_and_root(norm_fiber_velocity * FV_D2 + FV_D3)
    arcsinh *= FV_D1
    arcsinh += FV_D4
    xp.reciprocal(root, out=root)
    root *= FV_D1 * FV_D2
    return arcsinh, root


def force_velocity_inverse(force_velocity_multiplier: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`force_velocity`: ``v~ = (sinh((fv - d4) / d1) - d3) / d2``.

    Domain and range: any real.
    """
    return (torch.sinh((force_velocity_multiplier - FV_D4) / FV_D1) - FV_D3) / FV_D2


def tendon_force_length(
    norm_tendon_length: torch.Tensor,
    *,
    strain_at_one_norm_force: float = TENDON_STRAIN_AT_ONE,
) -> torch.Tensor:
    """Tendon force multiplier ``ft(l~T) = c1 exp(kT (l~T - c2)) - c3``.

    ``l~T`` is tendon length over tendon slack length. Domain: any real. Range: (-0.2, inf); 0 at
    slack (``l~T = 1``), 1 at ``l~T = 1 + eps0``. Below slack it is the smooth exponential
    extension (negative force tending to -0.2), see the module notes.
    """
    k_tendon = tendon_stiffness_exponent(strain_at_one_norm_force)
    return TENDON_C1 * torch.exp(k_tendon * (norm_tendon_length - TENDON_C2)) - TENDON_C3


def tendon_force_length_inverse(
    norm_tendon_force: torch.Tensor,
    *,
    strain_at_one_norm_force: float = TENDON_STRAIN_AT_ONE,
) -> torch.Tensor:
    """Inverse of :func:`tendon_force_length`: ``l~T = ln((ft + c3) / c1) / kT + c2``.

    Domain: ``ft > -c3 = -0.2``. Range: any real.
    """
    k_tendon = tendon_stiffness_exponent(strain_at_one_norm_force)
    return torch.log((norm_tendon_force + TENDON_C3) / TENDON_C1) / k_tendon + TENDON_C2
