"""Bounded least-squares calibration: trust-region reflective Gauss-Newton with exact Jacobians.

The total loss of :class:`~pipeline.calibrate.losses.Objective` is a sum of squared residuals
(:meth:`~pipeline.calibrate.losses.Objective.all_residuals`: moment tracking, operating-range
penalties, prior), over a few thousand samples with tens to a hundred parameters: a least-squares
problem. ``scipy.optimize.least_squares`` (method ``trf``, in physical units with the spec's bounds,
variables scaled by their bounds' span, exact trust-region subproblems) converges in a few dozen
evaluations where first-order methods need hundreds. The Jacobian is exact, column-compressed
forward mode (:meth:`~pipeline.calibrate.losses.Objective.residuals_and_jacobian`), for both
tendon models; no finite differences.

This is the default calibration method (``calibration.optimiser.method: least_squares``, started
from the scaled model) and the refinement after AdamW (``method: adamw``,
``polish_iterations`` > 0).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from pipeline.calibrate.losses import MODEL_FAILURES
from pipeline.errors import CalibrationError, describe

log = logging.getLogger(__name__)


@dataclass
class LeastSquaresResult:
    p: np.ndarray
    loss: float
    evaluations: int  #: residual evaluations
    jacobians: int  #: Jacobian evaluations
    wall_s: float
    stopped: str
    history: list[dict[str, float]] = field(default_factory=list)
    #: Jacobian of the tracking residuals at ``p`` (``(n_tracking, n_free)``; reused by the
    #: identifiability analysis), or None when the solver never evaluated one there.
    tracking_jacobian: np.ndarray | None = None


class LeastSquaresProblem(Protocol):
    """What the solver needs of a problem: bounds (``spec.lower``/``spec.upper``), residuals
    whose sum of squares is the loss (the first ``n_tracking_residuals`` the tracking term) and
    their exact Jacobian. :class:`~pipeline.calibrate.losses.Objective` is one."""

    @property
    def spec(self) -> Any: ...

    @property
    def n_tracking_residuals(self) -> int: ...

    def all_residuals(self, p: torch.Tensor) -> torch.Tensor: ...

    def residuals_and_jacobian(self, p: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]: ...


def solve_least_squares(objective: LeastSquaresProblem, p0: np.ndarray, /, *,
                        max_evaluations: int = 200,
                        tolerance: float = 1e-10, history: list[dict[str, float]] | None = None,
                        iteration_offset: int = 0, elapsed_offset_s: float = 0.0,
                        ) -> LeastSquaresResult:
    """Minimise the objective's sum of squared residuals from ``p0`` inside the spec's bounds.

    Args:
        objective: the calibration objective.
        p0: physical start (moved just inside the bounds).
        max_evaluations: residual evaluations at most.
        tolerance: scipy's ``ftol``, ``xtol`` and ``gtol``.
        history: rows are appended to this list (one per residual evaluation).
        iteration_offset, elapsed_offset_s: added to the rows' iteration and elapsed time.
    """
    from scipy.optimize import least_squares

    spec = objective.spec
    start = time.perf_counter()
    span = spec.upper - spec.lower
    x0 = np.clip(np.asarray(p0, dtype=float), spec.lower + 1e-9 * span, spec.upper - 1e-9 * span)
    n_tracking = objective.n_tracking_residuals
    rows = [] if history is None else history
    first_row = len(rows)
    cache: dict[str, Any] = {}
    counts = {"fun": 0, "jac": 0}

    def record(r: np.ndarray) -> None:
        tracking = float(r[:n_tracking] @ r[:n_tracking])
        total = float(r @ r)
        counts["fun"] += 1
        rows.append({"iteration": iteration_offset + counts["fun"], "loss": total,
                     "tracking": tracking, "penalty": total - tracking, "lr": math.nan,
                     "elapsed_s": elapsed_offset_s + time.perf_counter() - start})

    def fun(p: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            try:
                r = objective.all_residuals(torch.as_tensor(p, dtype=torch.float64)).detach()\
                    .cpu().numpy()
            except MODEL_FAILURES as exc:
                log.debug("least squares: model failed at a trial point (%s)", exc)
                r = np.full(n_res, 1e6)
        if not np.all(np.isfinite(r)):
            r = np.nan_to_num(r, nan=1e6, posinf=1e6, neginf=-1e6)
        record(r)
        return r

    def jac(p: np.ndarray):
        try:
            _, jacobian = objective.residuals_and_jacobian(torch.as_tensor(p, dtype=torch.float64))
        except MODEL_FAILURES as exc:
            raise CalibrationError(describe(
                None, f"the model's Jacobian cannot be evaluated at a trial point ({exc})",
                "narrow calibration.bounds of the fibre and tendon slack lengths so fibres stay "
                "longer than their pennation thickness, or check the trials' MTU lengths")) from exc
        if hasattr(jacobian, "toarray"):  # an objective may return a scipy sparse matrix
            jacobian = jacobian.toarray()
        counts["jac"] += 1
        cache["p"], cache["jacobian"] = p.copy(), jacobian
        return jacobian

    with torch.no_grad():
        n_res = int(objective.all_residuals(torch.as_tensor(x0)).numel())
    result = least_squares(fun, x0, jac=jac, bounds=(spec.lower, spec.upper), method="trf",
                           x_scale=span, tr_solver="exact", ftol=tolerance, xtol=tolerance,
                           gtol=tolerance, max_nfev=max_evaluations)
    p = np.asarray(result.x, dtype=float)
    loss = float(2.0 * result.cost)
    reached = [row["loss"] for row in rows[first_row:]]
    loss0 = reached[0] if reached else math.inf
    if loss > loss0:  # never return a worse point than the start
        p, loss = x0, loss0
    tracking_jacobian = None
    if "p" in cache and np.array_equal(cache["p"], p):
        tracking_jacobian = cache["jacobian"][:n_tracking]
    wall = time.perf_counter() - start
    stopped = {-1: "improper_input", 0: "max_evaluations", 1: "gtol", 2: "ftol", 3: "xtol",
               4: "ftol_xtol"}.get(int(result.status), str(result.status))
    log.info("least squares (trust-region reflective, exact Jacobian): loss %.6g -> %.6g, %d "
             "evaluations, %d Jacobians, %.2f s (stopped: %s)", loss0, loss, counts["fun"],
             counts["jac"], wall, stopped)
    return LeastSquaresResult(p, loss, counts["fun"], counts["jac"], wall, stopped, rows,
                              tracking_jacobian)
