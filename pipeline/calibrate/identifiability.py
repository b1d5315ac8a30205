"""Local identifiability at the optimum from the Gauss-Newton approximation of the Hessian.

For residuals ``r(p)`` (``(n_res,)``) at the calibrated physical parameters ``p`` (``(n_par,)``)::

    J = dr/dp,   sigma^2 = |r|^2 / (n_res - n_par),   C = sigma^2 (J^T J)^+

Calibration passes the exact Jacobian of its tracking residuals (the least-squares solver's last
one, or :meth:`~pipeline.calibrate.losses.Objective.residuals_and_jacobian`: column-compressed
forward mode, both tendon models). For other residual functions it is computed by automatic
differentiation (``torch.func.jacfwd``, reverse mode ``jacrev`` in chunks when forward mode is
unsupported, central finite differences as the last resort, and the log says so).

Residuals of a moment-tracking fit are time series: EMG-envelope and inverse-dynamics errors are
correlated over a few tenths of a second, so the independent-residual formula above understates
the variance. When the caller says which residuals form one time series (``series``, consecutive
in time), ``sigma^2`` is multiplied by the residuals' integrated autocorrelation time
``tau = 1 + 2 sum_k rho_k`` (pooled over the series, summed over Geyer's initial positive sequence
of ``rho_2m + rho_2m+1``; at least 1): the number of independent samples is ``n_res / tau``.

The pseudo-inverse is taken on the column-scaled matrix ``D J^T J D`` (``D = diag(|p|)``, so every
parameter is relative) with eigenvalues floored at ``rcond * max eigenvalue``: an unidentifiable
direction then gets a huge (not a silently small) variance, and parameters that load on it come out
with large relative standard errors and correlations near +-1, so they are flagged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)

ResidualFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Identifiability:
    """Standard errors, correlations and flags, in the order of ``labels``."""

    labels: tuple[str, ...]
    values: np.ndarray
    standard_errors: np.ndarray
    relative_standard_errors: np.ndarray
    correlation: np.ndarray
    sigma2: float  #: residual variance, times the autocorrelation time
    condition_number: float
    rank: int
    jacobian_method: str
    flagged: tuple[str, ...]
    correlated_pairs: tuple[tuple[str, str, float], ...]
    autocorrelation_time: float = 1.0

    def to_json(self) -> dict:
        return {
            "method": "gauss_newton",
            "jacobian": self.jacobian_method,
            "sigma2": self.sigma2,
            "autocorrelation_time_samples": self.autocorrelation_time,
            "condition_number": self.condition_number,
            "rank": self.rank,
            "n_parameters": len(self.labels),
            "flags": list(self.flagged),
            "correlated_pairs": [{"a": a, "b": b, "correlation": c}
                                 for a, b, c in self.correlated_pairs],
            "standard_errors": {lab: _finite(se) for lab, se
                                in zip(self.labels, self.standard_errors, strict=True)},
        }


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _jacobian(fn: ResidualFn, p: torch.Tensor, /, *, fd_rel_step: float = 1e-6,
             ) -> tuple[torch.Tensor, str]:
    """``(dr/dp, method)`` with ``method`` one of ``jacfwd``, ``jacrev``, ``finite_differences``."""
    p = p.detach().clone()
    for name, transform in (("jacfwd", lambda: torch.func.jacfwd(fn)(p)),
                            ("jacrev", lambda: torch.func.jacrev(fn, chunk_size=64)(p))):
        try:
            jac = transform()
            if torch.isfinite(jac).all():
                return jac.detach(), name
        except (RuntimeError, NotImplementedError, TypeError) as exc:
            log.debug("identifiability: %s unavailable through the model (%s)", name, exc)
    log.info("identifiability: autodiff Jacobian transforms are not supported by the model's "
             "custom functions; using central finite differences")
    with torch.no_grad():
        columns = []
        for k in range(p.numel()):
            h = fd_rel_step * max(abs(float(p[k])), 1e-3)
            up, down = p.clone(), p.clone()
            up[k] += h
            down[k] -= h
            columns.append((fn(up) - fn(down)) / (2.0 * h))
    return torch.stack(columns, dim=-1), "finite_differences"


def autocorrelation_time(residuals: np.ndarray, series: np.ndarray) -> float:
    """Integrated autocorrelation time (in samples, >= 1) of ``residuals`` pooled over the time
    series labelled by ``series`` (same length; a series' residuals are consecutive in time)."""
    residuals = np.asarray(residuals, dtype=float)
    series = np.asarray(series)
    if residuals.shape != series.shape:
        raise ValueError("residuals and series must have the same shape")
    total = float(residuals @ residuals)
    if residuals.size < 4 or total <= 0.0:
        return 1.0
    groups = [residuals[series == label] for label in np.unique(series)]
    longest = max(x.size for x in groups)
    sums = np.zeros(longest)  # sum over series of sum_t r_t r_(t+k), k = 0 .. longest - 1
    for x in groups:
        size = 1 << int(np.ceil(np.log2(2 * x.size)))
        spectrum = np.fft.rfft(x, size)
        sums[:x.size] += np.fft.irfft(spectrum * np.conj(spectrum), size)[:x.size]
    rho = sums / total
    tau = -1.0
    for m in range(longest // 2):
        pair = rho[2 * m] + rho[2 * m + 1]
        if pair <= 0.0:
            break
        tau += 2.0 * pair
    return max(float(tau), 1.0)


def analyse(fn: ResidualFn, p: np.ndarray | torch.Tensor, /, *, labels: list[str] | tuple[str, ...],
            max_relative_se: float = 0.1, max_abs_correlation: float = 0.95,
            rcond: float = 1e-13, series: np.ndarray | None = None,
            jacobian: np.ndarray | None = None) -> Identifiability:
    """Standard errors and correlations of ``p`` for the residual function ``fn``.

    Args:
        fn: physical parameters ``(n_par,)`` -> residuals ``(n_res,)`` (differentiable).
        p: parameter values at the optimum.
        labels: one name per parameter (used in the flags).
        max_relative_se, max_abs_correlation: flag thresholds.
        rcond: eigenvalue floor relative to the largest eigenvalue of the scaled ``J^T J``.
        series: ``(n_res,)`` time-series label of each residual (see the module docstring);
            ``None`` treats the residuals as independent.
        jacobian: ``dr/dp`` at ``p`` when the caller has it (e.g. the least-squares solver's
            exact Jacobian); otherwise computed by :func:`jacobian`.
    """
    p_t = torch.as_tensor(p, dtype=torch.float64).detach()
    with torch.no_grad():
        residuals = fn(p_t).reshape(-1)
    if jacobian is None:
        jac, method = _jacobian(fn, p_t)
    else:
        jac, method = torch.as_tensor(np.asarray(jacobian)), "exact_forward_mode"
    jac_np = jac.reshape(residuals.numel(), p_t.numel()).double().cpu().numpy()
    res = residuals.double().cpu().numpy()
    n_res, n_par = jac_np.shape
    scale = np.maximum(np.abs(p_t.numpy()), 1e-12)
    js = jac_np * scale
    hessian = js.T @ js
    eigval, eigvec = np.linalg.eigh(hessian)
    top = max(float(eigval.max()), np.finfo(float).tiny)
    floor = rcond * top
    rank = int(np.sum(eigval > floor))
    cond = float(top / max(float(eigval.min()), floor))
    inv_scaled = (eigvec / np.maximum(eigval, floor)) @ eigvec.T
    dof = max(n_res - n_par, 1)
    tau = 1.0 if series is None else autocorrelation_time(res, np.asarray(series).reshape(-1))
    sigma2 = float(res @ res) / dof * tau
    cov_rel = sigma2 * inv_scaled
    var_rel = np.clip(np.diag(cov_rel), 0.0, None)
    rel_se = np.sqrt(var_rel)
    se = rel_se * scale
    d = np.sqrt(np.clip(np.diag(inv_scaled), np.finfo(float).tiny, None))
    corr = np.clip(inv_scaled / np.outer(d, d), -1.0, 1.0)
    labels = tuple(labels)
    flagged = set()
    for i, lab in enumerate(labels):
        if rel_se[i] > max_relative_se:
            flagged.add(lab)
    pairs = []
    for i in range(n_par):
        for j in range(i + 1, n_par):
            if abs(corr[i, j]) > max_abs_correlation:
                pairs.append((labels[i], labels[j], float(corr[i, j])))
                flagged.update((labels[i], labels[j]))
    if rank < n_par:
        log.warning("identifiability: J^T J has rank %d of %d (condition %.3g): some parameter "
                    "combinations are not identifiable from these trials", rank, n_par, cond)
    ordered = tuple(lab for lab in labels if lab in flagged)
    return Identifiability(labels, p_t.numpy().copy(), se, rel_se, corr, sigma2, cond, rank,
                           method, ordered, tuple(pairs), tau)


def log_report(result: Identifiability, *, max_items: int = 20) -> None:
    """Log flagged parameters and highly-correlated pairs."""
    log.info("identifiability (%s Jacobian): rank %d/%d, condition number %.3g, sigma^2 %.3g "
             "(residual autocorrelation time %.1f samples)", result.jacobian_method, result.rank,
             len(result.labels), result.condition_number, result.sigma2,
             result.autocorrelation_time)
    for i, lab in enumerate(result.labels):
        if lab in result.flagged and i < 10 * max_items:
            log.warning("identifiability: %s = %.6g, SE %.3g (relative %.1f%%)", lab,
                        result.values[i], result.standard_errors[i],
                        100.0 * result.relative_standard_errors[i])
    for a, b, c in result.correlated_pairs[:max_items]:
        log.warning("identifiability: %s and %s are correlated (r = %+.3f)", a, b, c)
    if len(result.correlated_pairs) > max_items:
        log.warning("identifiability: ... and %d more correlated pairs (see parameters.json)",
                    len(result.correlated_pairs) - max_items)
