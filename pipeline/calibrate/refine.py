"""Optional least-squares refinement of a calibration optimum (trust-region reflective).

The total loss of :class:`~pipeline.calibrate.losses.Objective` is a sum of squared residuals
(:meth:`~pipeline.calibrate.losses.Objective.all_residuals`), so after AdamW has found the basin, a
bounded Gauss-Newton-type method (``scipy.optimize.least_squares``, method ``trf``, in physical
units with the parameter bounds) converges quadratically to the optimum. The Jacobian is exact
forward-mode autodiff (``torch.func.jacfwd``) where the model supports it (stiff tendon) and
scipy's finite differences otherwise (the elastic tendon's custom autograd function has no
forward-mode rule).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import least_squares

from pipeline.calibrate.losses import MODEL_FAILURES
from pipeline.calibrate.spec import ParameterSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefineResult:
    p: np.ndarray
    loss: float
    evaluations: int
    jacobians: int
    wall_s: float
    jacobian_method: str


def refine_least_squares(residuals: Callable[[torch.Tensor], torch.Tensor], spec: ParameterSpec,
                         p0: np.ndarray, /, *, max_evaluations: int = 50) -> RefineResult:
    """Refine ``p0`` by bounded least squares on ``residuals`` (physical ``p`` -> ``(n_res,)``)."""
    start = time.perf_counter()
    span = spec.upper - spec.lower
    x0 = np.clip(p0, spec.lower + 1e-9 * span, spec.upper - 1e-9 * span)

    def fun(p: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            try:
                r = residuals(torch.as_tensor(p, dtype=torch.float64)).numpy()
            except MODEL_FAILURES:
                return np.full(n_res, 1e6)
        return r if np.all(np.isfinite(r)) else np.nan_to_num(r, nan=1e6, posinf=1e6,
                                                               neginf=-1e6)

    with torch.no_grad():
        n_res = residuals(torch.as_tensor(x0, dtype=torch.float64)).numel()

    def jac_autodiff(p: np.ndarray) -> np.ndarray:
        return torch.func.jacfwd(residuals)(torch.as_tensor(p, dtype=torch.float64)).numpy()

    jac: Callable[[np.ndarray], np.ndarray] | str = "2-point"
    method = "finite_differences"
    try:
        test = jac_autodiff(x0)
        if np.all(np.isfinite(test)):
            jac, method = jac_autodiff, "jacfwd"
    except (RuntimeError, NotImplementedError, TypeError) as exc:
        log.debug("refine: forward-mode autodiff unavailable (%s); finite differences", exc)
    loss0 = float(np.sum(fun(x0) ** 2))
    result = least_squares(fun, x0, jac=jac, bounds=(spec.lower, spec.upper), method="trf",
                           x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-12,
                           max_nfev=max_evaluations)
    loss = float(2.0 * result.cost)
    p = result.x if loss <= loss0 else x0
    wall = time.perf_counter() - start
    log.info("least-squares refinement (%s Jacobian): loss %.6g -> %.6g, %d evaluations, %d "
             "Jacobians, %.2f s", method, loss0, min(loss, loss0), result.nfev,
             result.njev or 0, wall)
    return RefineResult(np.asarray(p, dtype=float), min(loss, loss0), int(result.nfev),
                        int(result.njev or 0), wall, method)
