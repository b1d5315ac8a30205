"""Scalar functions of one coordinate (OpenSim ``Function`` subclasses) in torch.

A CustomJoint moves each of its six transform axes by a function of one coordinate: a linear
function for plain rotations, a constant for unused axes, splines or polynomials for coupled
translations such as a gait model's knee. Each class here returns the value and the first two
derivatives, which the skeleton needs for velocities and accelerations. Splines are rebuilt from
OpenSim's own evaluations (value, slope and curvature at the knots), so they are the same
piecewise cubics, including OpenSim's linear extrapolation outside the knots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


class UnsupportedFunctionError(ValueError):
    """An OpenSim function type the torch skeleton cannot express."""


@dataclass(frozen=True)
class Constant:
    value: float

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        zero = torch.zeros_like(x)
        return zero + self.value, zero, zero


@dataclass(frozen=True)
class Polynomial:
    """sum_k coefficients[k] x**(n-1-k) (highest power first, as OpenSim stores them)."""

    coefficients: tuple[float, ...]

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = len(self.coefficients)
        value = torch.zeros_like(x)
        slope = torch.zeros_like(x)
        curvature = torch.zeros_like(x)
        for k, c in enumerate(self.coefficients):
            power = n - 1 - k
            value = value + c * x ** power
            if power >= 1:
                slope = slope + c * power * x ** (power - 1)
            if power >= 2:
                curvature = curvature + c * power * (power - 1) * x ** (power - 2)
        return value, slope, curvature


@dataclass(frozen=True)
class PiecewiseCubic:
    """y_k + b_k dx + c_k dx^2 + d_k dx^3 on [x_k, x_k+1]; linear with the end slope outside."""

    knots: np.ndarray
    y: np.ndarray
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t = lambda a: torch.as_tensor(a, dtype=x.dtype, device=x.device)  # noqa: E731
        knots, y, b, c, d = t(self.knots), t(self.y), t(self.b), t(self.c), t(self.d)
        n = knots.shape[0]
        k = torch.searchsorted(knots, x.detach().contiguous(), right=True) - 1
        k = k.clamp(0, n - 2)
        dx = x - knots[k]
        inside = (y[k] + dx * (b[k] + dx * (c[k] + dx * d[k])),
                  b[k] + dx * (2 * c[k] + 3 * dx * d[k]),
                  2 * c[k] + 6 * dx * d[k])
        below = x < knots[0]
        above = x > knots[-1]
        value = torch.where(below, y[0] + (x - knots[0]) * b[0],
                            torch.where(above, y[-1] + (x - knots[-1]) * b[-1], inside[0]))
        slope = torch.where(below, b[0], torch.where(above, b[-1], inside[1]))
        curvature = torch.where(below | above, torch.zeros_like(x), inside[2])
        return value, slope, curvature


@dataclass(frozen=True)
class Scaled:
    """``scale`` times another function (OpenSim's MultiplierFunction)."""

    scale: float
    inner: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        value, slope, curvature = self.inner(x)
        return self.scale * value, self.scale * slope, self.scale * curvature


def _opensim_piecewise_cubic(function, knots: np.ndarray) -> PiecewiseCubic:
    """Rebuild a cubic spline from OpenSim's value and derivatives at the knots and midpoints."""
    import opensim

    def at(x: float, order: int) -> float:
        arg = opensim.Vector(1, float(x))
        if order == 0:
            return function.calcValue(arg)
        # A plain list, not opensim.StdVectorInt: that SWIG vector breaks ezc3d writes
        # for the rest of the process (see osim/muscle_analysis.py).
        return function.calcDerivative([0] * order, arg)

    y = np.array([at(x, 0) for x in knots])
    b = np.array([at(x, 1) for x in knots])
    c = np.array([at(x, 2) / 2 for x in knots])
    h = np.diff(knots)
    mid = np.array([at(x0 + hh / 2, 2) for x0, hh in zip(knots[:-1], h, strict=True)])
    d = np.append((mid - 2 * c[:-1]) / (3 * h), 0.0)
    return PiecewiseCubic(knots=knots, y=y, b=b, c=c, d=d)


def from_opensim(function):
    """The torch counterpart of an OpenSim Function of one argument."""
    import opensim

    kind = function.getConcreteClassName()
    if kind == "Constant":
        return Constant(opensim.Constant.safeDownCast(function).getValue())
    if kind == "LinearFunction":
        linear = opensim.LinearFunction.safeDownCast(function)
        return Polynomial((linear.getSlope(), linear.getIntercept()))
    if kind == "PolynomialFunction":
        coefficients = opensim.PolynomialFunction.safeDownCast(function).getCoefficients()
        return Polynomial(tuple(coefficients.get(i) for i in range(coefficients.size())))
    if kind == "MultiplierFunction":
        multiplier = opensim.MultiplierFunction.safeDownCast(function)
        return Scaled(multiplier.getScale(), from_opensim(multiplier.getFunction()))
    if kind in ("SimmSpline", "NaturalCubicSpline"):
        spline = getattr(opensim, kind).safeDownCast(function)
        knots = np.array([spline.getX(i) for i in range(spline.getSize())])
        if knots.size < 2 or np.any(np.diff(knots) <= 0):
            raise UnsupportedFunctionError(f"{kind} '{function.getName()}' needs at least two "
                                           "increasing knots")
        return _opensim_piecewise_cubic(spline, knots)
    raise UnsupportedFunctionError(
        f"transform-axis function of type {kind} is not supported (supported: Constant, "
        "LinearFunction, PolynomialFunction, SimmSpline, NaturalCubicSpline, MultiplierFunction)")
