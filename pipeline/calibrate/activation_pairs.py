"""The ``(c1, c2)`` fold: where gradient methods start and what least squares solves in.

The activation filter depends on ``beta1 = c1 + c2`` and ``beta2 = c1 c2`` only, so the model is
symmetric in ``c1`` and ``c2``. Along the fold ``c1 = c2`` the two Jacobian columns are equal and
the loss has zero slope along ``c1 - c2``:

* a gradient method started on the fold cannot leave it (AdamW moves both alike; the default start
  ``c1 = c2 = -0.5`` is on it): :func:`off_the_fold` moves such pairs apart first;
* a muscle whose best filter has a double root (its optimum *on* the fold, common with model
  error) is approached ever more slowly by Gauss-Newton, whose curvature along ``c1 - c2``
  vanishes there: the upper-limb bench problem crawled from evaluation 49 to past 200 on a 1 %
  gain. :class:`PairCoordinates` gives the least-squares solver each pair as its mean ``m`` and
  squared gap ``w = (c2 - c1)^2``, in which ``beta2 = m^2 - w / 4`` is linear: the fold becomes
  the plain bound ``w >= w_min``. The solver switches to them when its physical-coordinate
  stage stalls (:mod:`pipeline.calibrate.least_squares`; 35 evaluations instead of 200 there).

``c1 = m - sigma sqrt(w)/2`` and ``c2 = m + sigma sqrt(w)/2`` keep each pair's order at the
switch (``sigma = +-1``: a prior centred on unequal start values is not symmetric in the two)
and are reflected back into the pair's bounds when they leave them (a mirror, not a clip: the
loss keeps a slope towards the inside, so a bound is a minimum only where the constrained problem
has one there). Only pairs with equal bounds are mapped; any other parameter is solved as it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Smallest gap ``c2 - c1`` of the least-squares coordinates, as a fraction of the pair's range
#: (``w`` at its lower bound: the loss there differs from the fold's by ~1e-8 relative).
MIN_GAP_FRACTION = 1e-4


def activation_pairs(spec: Any) -> tuple[np.ndarray, np.ndarray]:
    """Indices in the free vector of ``(c1, c2)`` entries of the same name, both free (none for
    a problem whose spec has no ``labels``)."""
    where = {label: i for i, label in enumerate(getattr(spec, "labels", ()))}
    first, second = [], []
    for (kind, entry), i in where.items():
        j = where.get(("c2", entry))
        if kind == "c1" and j is not None:
            first.append(i)
            second.append(j)
    return np.array(first, dtype=int), np.array(second, dtype=int)


def off_the_fold(spec: Any, p: np.ndarray, /, *, fraction_of_range: float = 0.11) -> np.ndarray:
    """``p`` with every free ``(c1, c2)`` pair closer than 0.1 % of its range moved apart.

    The pair keeps its mean; ``c1`` goes below and ``c2`` above it by
    ``fraction_of_range / 2`` of the range (less where a bound is nearer).
    """
    out = np.array(p, dtype=float, copy=True)
    first, second = activation_pairs(spec)
    if first.size == 0:
        return out
    lower = np.maximum(spec.lower[first], spec.lower[second])
    upper = np.minimum(spec.upper[first], spec.upper[second])
    span = upper - lower
    mean = 0.5 * (out[first] + out[second])
    room = np.minimum(mean - lower, upper - mean) * (1.0 - 1e-6)
    delta = np.minimum(0.5 * fraction_of_range * span, room)
    move = (np.abs(out[first] - out[second]) < 1e-3 * span) & (delta > 0.0)
    if move.any():
        out[first[move]] = mean[move] - delta[move]
        out[second[move]] = mean[move] + delta[move]
        names = [spec.labels[i][1] for i in first[move]]
        log.info("c1 = c2 at the start for %d MTU(s) (%s): moved apart by %.3g of their range "
                 "(the model is symmetric in c1 and c2, so a gradient method cannot leave "
                 "c1 = c2)", len(names), ", ".join(names), fraction_of_range)
    return out


@dataclass(frozen=True)
class PairCoordinates:
    """The least-squares variables ``y``: each mapped pair's ``(m, w)`` in its ``(c1, c2)`` slots,
    every other parameter unchanged (module docstring)."""

    first: np.ndarray  #: c1 slots (hold ``m``)
    second: np.ndarray  #: c2 slots (hold ``w``)
    low: np.ndarray  #: the pairs' common bounds
    high: np.ndarray
    #: +1 where ``c1 <= c2``, -1 where ``c1 > c2`` (:meth:`oriented_as`); None: all +1
    sign: np.ndarray | None = None

    @classmethod
    def of(cls, spec: Any) -> PairCoordinates:
        first, second = activation_pairs(spec)
        lower, upper = spec.lower, spec.upper
        same = (lower[first] == lower[second]) & (upper[first] == upper[second])
        return cls(first[same], second[same], lower[first[same]], upper[first[same]])

    @classmethod
    def identity(cls) -> PairCoordinates:
        """No pair mapped: ``y`` is ``p``."""
        empty = np.zeros(0, dtype=int)
        return cls(empty, empty, np.zeros(0), np.zeros(0))

    @property
    def n_pairs(self) -> int:
        return int(self.first.size)

    def oriented_as(self, p: np.ndarray) -> PairCoordinates:
        """These coordinates with each pair's order (``c1 <= c2`` or ``c1 > c2``) as in ``p``."""
        p = np.asarray(p, dtype=float)
        sign = np.where(p[self.first] > p[self.second], -1.0, 1.0)
        return PairCoordinates(self.first, self.second, self.low, self.high, sign)

    @property
    def _sign(self) -> np.ndarray | float:
        return 1.0 if self.sign is None else self.sign

    @property
    def _min_w(self) -> np.ndarray:
        return (MIN_GAP_FRACTION * (self.high - self.low)) ** 2

    def bounds(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of ``y`` from the physical ones: ``m`` in the pair's range, ``w`` from
        ``w_min`` to the squared range."""
        y_lower, y_upper = np.array(lower, dtype=float), np.array(upper, dtype=float)
        y_lower[self.second] = self._min_w
        y_upper[self.second] = (self.high - self.low) ** 2
        return y_lower, y_upper

    def to_solver(self, p: np.ndarray) -> np.ndarray:
        """``y`` of the physical ``p`` (a pair ordered against :attr:`sign` comes back
        swapped: the same model)."""
        y = np.array(p, dtype=float, copy=True)
        c1, c2 = y[self.first].copy(), y[self.second].copy()
        y[self.first] = 0.5 * (c1 + c2)
        y[self.second] = np.maximum((c2 - c1) ** 2, self._min_w)
        return y

    def _pair_values(self, y: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(c1, c2, dc1/dm, dc2/dm, half gap)``: mirrored into the bounds, with the mirror's
        sign as ``dc/dm``."""
        m, half = y[self.first], 0.5 * np.sqrt(y[self.second])
        out = []
        for raw in (m - self._sign * half, m + self._sign * half):
            below, above = raw < self.low, raw > self.high
            value = np.where(below, 2.0 * self.low - raw, np.where(above, 2.0 * self.high - raw,
                                                                  raw))
            out.append((value, np.where(below | above, -1.0, 1.0)))
        (c1, s1), (c2, s2) = out
        return c1, c2, s1, s2, half

    def to_model(self, y: np.ndarray) -> np.ndarray:
        """Physical ``p`` of ``y``."""
        p = np.array(y, dtype=float, copy=True)
        c1, c2, *_ = self._pair_values(p)
        p[self.first], p[self.second] = c1, c2
        return p

    def jacobian(self, y: np.ndarray, jacobian_p: np.ndarray) -> np.ndarray:
        """The Jacobian w.r.t. ``y`` from the one w.r.t. ``p`` (columns of the pairs combined:
        ``dc1/dm = s1``, ``dc2/dm = s2``, ``dc1/dw = -sigma s1 / (4 sqrt(w))``,
        ``dc2/dw = sigma s2 / (4 sqrt(w))``, ``s``: the mirror's sign)."""
        if self.n_pairs == 0:
            return jacobian_p
        _, _, s1, s2, half = self._pair_values(np.asarray(y, dtype=float))
        out = np.array(jacobian_p, dtype=float, copy=True)
        a, b = jacobian_p[:, self.first] * s1, jacobian_p[:, self.second] * s2
        out[:, self.first] = a + b
        out[:, self.second] = (b - a) * (self._sign / (8.0 * half))
        return out
