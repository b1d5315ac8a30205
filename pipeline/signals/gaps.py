"""Marker gaps: find runs of missing samples, fill short ones with a cubic spline.

A *gap* is a run of missing samples with valid samples on both sides. Missing samples at the start
or end of a trial cannot be interpolated; they stay NaN (OpenSim's IK then ignores the marker in
those frames).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import C3DError, ConfigError, describe
from pipeline.signals.filters import finite_runs

log = logging.getLogger(__name__)

# Valid samples used on each side of a gap to fit the spline.
SUPPORT_SAMPLES = 10


@dataclass(frozen=True)
class Gap:
    marker: str
    start: int  # first missing sample
    stop: int  # first valid sample after the gap

    def span_s(self, rate_hz: float, first_time_s: float = 0.0) -> tuple[float, float]:
        return (first_time_s + (self.start - 1) / rate_hz, first_time_s + self.stop / rate_hz)


def not_a_knot_spline(t: np.ndarray, y: np.ndarray, t_new: np.ndarray) -> np.ndarray:
    """Cubic spline through ``(t, y)`` (``y``: samples first) evaluated at ``t_new``.

    Twice continuously differentiable, and "not-a-knot" at both ends (the third derivative is
    continuous at the second and second-to-last knots). Three knots give the parabola through
    them, two the straight line. The knot slopes solve one small linear system.
    """
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float).reshape(len(t), -1)
    n = len(t)
    h = np.diff(t)
    delta = np.diff(y, axis=0) / h[:, None]
    if n == 2:
        slopes = np.vstack([delta, delta]).astype(float)
    elif n == 3:  # the parabola through the three knots
        curvature = (delta[1] - delta[0]) / (h[0] + h[1])
        slopes = np.vstack([delta[0] - curvature * h[0], delta[0] + curvature * h[0],
                            delta[0] + curvature * (h[0] + 2.0 * h[1])])
    else:
        system = np.zeros((n, n))
        rhs = np.zeros((n, y.shape[1]))
        for i in range(1, n - 1):  # continuous second derivative at interior knots
            system[i, i - 1:i + 2] = [h[i], 2.0 * (h[i - 1] + h[i]), h[i - 1]]
            rhs[i] = 3.0 * (h[i] * delta[i - 1] + h[i - 1] * delta[i])
        system[0, :2] = [h[1], h[0] + h[1]]
        first, last = h[0] + h[1], h[-2] + h[-1]
        rhs[0] = ((h[0] + 2.0 * first) * h[1] * delta[0] + h[0] ** 2 * delta[1]) / first
        system[-1, -2:] = [last, h[-2]]
        rhs[-1] = (h[-1] ** 2 * delta[-2] + (2.0 * last + h[-1]) * h[-2] * delta[-1]) / last
        slopes = np.asarray(np.linalg.solve(system, rhs), dtype=float)
    k = np.clip(np.searchsorted(t, t_new, side="right") - 1, 0, n - 2)
    width = h[k][:, None]
    s = ((np.asarray(t_new, dtype=float) - t[k]) / h[k])[:, None]
    # Cubic Hermite form on each interval, from the end values and slopes.
    return np.asarray((1 + 2 * s) * (1 - s) ** 2 * y[k] + s * (1 - s) ** 2 * width * slopes[k]
                      + s**2 * (3 - 2 * s) * y[k + 1] - s**2 * (1 - s) * width * slopes[k + 1])


def find_gaps(xyz: np.ndarray, labels: tuple[str, ...] | list[str]) -> list[Gap]:
    """Interior gaps of ``xyz`` (frame, marker, 3), in marker order then time order."""
    valid = np.all(np.isfinite(xyz), axis=2)
    gaps = []
    for m, label in enumerate(labels):
        runs = finite_runs(valid[:, m])
        gaps += [Gap(label, a_stop, b_start) for (_, a_stop), (b_start, _) in
                 zip(runs[:-1], runs[1:], strict=True)]
    return gaps


def fill_gaps(xyz: np.ndarray, /, labels: tuple[str, ...] | list[str], *, rate_hz: float,
              max_gap_s: float, long_gap: str = "error", first_time_s: float = 0.0,
              file: str | Path | None = None) -> np.ndarray:
    """Return a copy of ``xyz`` with gaps up to ``max_gap_s`` filled by cubic interpolation.

    A longer gap raises :class:`C3DError` naming the marker and the time span
    (``long_gap="error"``) or is logged and left NaN (``long_gap="warn"``).
    """
    if long_gap not in ("error", "warn"):
        raise ConfigError(f"markers.long_gap is {long_gap!r}. Fix: use error or warn")
    out = np.array(xyz, dtype=float, copy=True)
    valid = np.all(np.isfinite(out), axis=2)
    too_long = []
    for gap in find_gaps(out, labels):
        duration_s = (gap.stop - gap.start) / rate_hz
        if duration_s > max_gap_s + 1e-9:
            too_long.append(gap)
            continue
        m = list(labels).index(gap.marker)
        before = np.flatnonzero(valid[: gap.start, m])[-SUPPORT_SAMPLES:]
        after = gap.stop + np.flatnonzero(valid[gap.stop:, m])[:SUPPORT_SAMPLES]
        support = np.concatenate([before, after])
        out[gap.start:gap.stop, m, :] = not_a_knot_spline(
            support.astype(float), out[support, m, :], np.arange(gap.start, gap.stop, dtype=float))
    if too_long:
        spans = "; ".join(
            f"{g.marker} from {g.span_s(rate_hz, first_time_s)[0]:.3f} s to "
            f"{g.span_s(rate_hz, first_time_s)[1]:.3f} s ({(g.stop - g.start) / rate_hz:.3f} s)"
            for g in too_long[:5])
        more = f" and {len(too_long) - 5} more" if len(too_long) > 5 else ""
        message = describe(file, f"marker gap longer than markers.max_gap_s = {max_gap_s:g} s: "
                           f"{spans}{more}",
                           "fill the gap in the capture software, raise markers.max_gap_s, or "
                           "set markers.long_gap: warn to keep it as missing data")
        if long_gap == "error":
            raise C3DError(message)
        log.warning("%s", message)
    return out


def edge_missing(xyz: np.ndarray, labels: tuple[str, ...] | list[str]) -> dict[str, int]:
    """Per marker, the number of missing samples at the start plus the end of the trial."""
    valid = np.all(np.isfinite(xyz), axis=2)
    result = {}
    for m, label in enumerate(labels):
        runs = finite_runs(valid[:, m])
        if not runs:
            result[label] = int(valid.shape[0])
            continue
        n = runs[0][0] + (valid.shape[0] - runs[-1][1])
        if n:
            result[label] = int(n)
    return result
