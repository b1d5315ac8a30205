"""Simulated annealing of Corana et al. (1987) as implemented by Goffe et al. (1994), as in CEINMS.

A generic minimiser of ``objective(x) -> float`` over a box (here the normalised parameter space
[0, 1]^n, like CEINMS). One *temperature* consists of ``nt`` step-length adjustments, each after
``ns`` sweeps over all coordinates; every coordinate move is evaluated and accepted by the
Metropolis criterion ``u < exp((f - f') / T)``. After each block of ``ns`` sweeps the step length
of coordinate ``i`` is adjusted from its acceptance ratio ``r_i`` (Corana eq. with ``c = 2``)::

    r_i > 0.6:  v_i <- v_i (1 + c (r_i - 0.6) / 0.4)
    r_i < 0.4:  v_i <- v_i / (1 + c (0.4 - r_i) / 0.4)

A move that leaves the box is replaced by a uniform draw inside it. After ``nt`` adjustments the
temperature drops (``T <- rt T``) and the search restarts from the best point. It stops when the
current value is within ``eps`` of the optimum and of each of the last ``n_eps`` end-of-temperature
values, or after ``max_evaluations`` objective evaluations.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

#: Corana's step-adjustment constants (Goffe et al. 1994 use c_i = 2 for every coordinate).
STEP_C = 2.0
LOW_RATIO = 0.4
HIGH_RATIO = 0.6


@dataclass(frozen=True)
class AnnealingOptions:
    """CEINMS-like defaults (``calibration.annealing`` in the config)."""

    ns: int = 20
    nt: int = 5
    rt: float = 0.3
    t0: float = 100.0
    eps: float = 1e-5
    n_eps: int = 4
    max_evaluations: int = 200_000
    initial_step: float = 0.5

    @classmethod
    def from_config(cls, cfg: dict) -> AnnealingOptions:
        keys = ("ns", "nt", "rt", "t0", "eps", "n_eps", "max_evaluations", "initial_step")
        return cls(**{k: cfg[k] for k in keys if k in cfg})


@dataclass
class AnnealingResult:
    x: np.ndarray
    loss: float
    evaluations: int
    temperatures: int
    converged: bool
    wall_s: float
    history: list[dict[str, float]] = field(default_factory=list)


def anneal(
    objective: Callable[[np.ndarray], float],
    x0: np.ndarray,
    /,
    *,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    options: AnnealingOptions | None = None,
    seed: int = 0,
    progress: Callable[[int, float, float], None] | None = None,
) -> AnnealingResult:
    """Minimise ``objective`` from ``x0`` inside ``[lower, upper]`` (default [0, 1]^n).

    ``progress(evaluations, best_loss, temperature)`` is called once per temperature. A
    non-finite objective value counts as a rejected move (never accepted, never the optimum).
    """
    opts = options or AnnealingOptions()
    rng = np.random.default_rng(seed)
    x = np.array(x0, dtype=float)
    n = x.size
    lb = np.zeros(n) if lower is None else np.asarray(lower, dtype=float)
    ub = np.ones(n) if upper is None else np.asarray(upper, dtype=float)
    step = np.full(n, opts.initial_step) * (ub - lb)
    start = time.perf_counter()

    def evaluate(point: np.ndarray) -> float:
        value = float(objective(point))
        return value if np.isfinite(value) else np.inf

    f = evaluate(x)
    evaluations = 1
    x_opt, f_opt = x.copy(), f
    f_star = np.full(max(opts.n_eps, 1), np.inf)
    temperature = float(opts.t0)
    history: list[dict[str, float]] = []
    n_temps = 0
    converged = False
    while evaluations < opts.max_evaluations:
        n_up = n_down = n_rej = 0
        for _ in range(opts.nt):
            accepted = np.zeros(n, dtype=int)
            for _ in range(opts.ns):
                for h in range(n):
                    trial = x.copy()
                    trial[h] = x[h] + (2.0 * rng.random() - 1.0) * step[h]
                    if trial[h] < lb[h] or trial[h] > ub[h]:
                        trial[h] = lb[h] + (ub[h] - lb[h]) * rng.random()
                    f_trial = evaluate(trial)
                    evaluations += 1
                    if f_trial <= f:
                        x, f = trial, f_trial
                        accepted[h] += 1
                        n_up += 1
                        if f_trial < f_opt:
                            x_opt, f_opt = trial.copy(), f_trial
                    elif np.isfinite(f_trial) and rng.random() < np.exp(
                        max((f - f_trial) / temperature, -700.0)
                    ):
                        x, f = trial, f_trial
                        accepted[h] += 1
                        n_down += 1
                    else:
                        n_rej += 1
                    if evaluations >= opts.max_evaluations:
                        break
                if evaluations >= opts.max_evaluations:
                    break
            step = _adjust_steps(step, accepted / opts.ns, ub - lb)
            if evaluations >= opts.max_evaluations:
                break
        n_temps += 1
        history.append({"evaluations": evaluations, "loss": f_opt, "temperature": temperature,
                        "accepted_up": n_up, "accepted_down": n_down, "rejected": n_rej})
        if progress is not None:
            progress(evaluations, f_opt, temperature)
        log.debug("annealing T=%.3g evaluations=%d best=%.6g (up %d, down %d, rejected %d)",
                  temperature, evaluations, f_opt, n_up, n_down, n_rej)
        if evaluations >= opts.max_evaluations:
            break
        f_star[0] = f
        if f_star[0] - f_opt <= opts.eps and np.all(np.abs(f - f_star[1:]) <= opts.eps):
            converged = True
            break
        temperature *= opts.rt
        f_star[1:] = f_star[:-1].copy()
        x, f = x_opt.copy(), f_opt
    if not converged:
        log.warning("simulated annealing stopped at the evaluation cap (%d) before its eps "
                    "criterion; raise calibration.annealing.max_evaluations for a tighter optimum",
                    opts.max_evaluations)
    return AnnealingResult(x_opt, f_opt, evaluations, n_temps, converged,
                           time.perf_counter() - start, history)


def _adjust_steps(step: np.ndarray, ratio: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Corana's step-length update from the acceptance ratios of the last ``ns`` sweeps."""
    out = step.copy()
    high = ratio > HIGH_RATIO
    low = ratio < LOW_RATIO
    out[high] *= 1.0 + STEP_C * (ratio[high] - HIGH_RATIO) / LOW_RATIO
    out[low] /= 1.0 + STEP_C * (LOW_RATIO - ratio[low]) / LOW_RATIO
    return np.minimum(out, span)
