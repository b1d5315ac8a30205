"""Bounded least-squares calibration: trust-region reflective Gauss-Newton with exact Jacobians.

The total loss of :class:`~pipeline.calibrate.losses.Objective` is a sum of squared residuals
(:meth:`~pipeline.calibrate.losses.Objective.all_residuals`: moment tracking, operating-range
penalties, prior), over a few thousand samples with tens to a hundred parameters: a least-squares
problem. ``scipy.optimize.least_squares`` (method ``trf``, in physical units with the spec's bounds,
variables scaled by their bounds' span, exact trust-region subproblems) converges in a few dozen
evaluations where first-order methods need hundreds. The Jacobian is exact, column-compressed
forward mode (:meth:`~pipeline.calibrate.losses.Objective.residuals_and_jacobian`), for both
tendon models; no finite differences. The solver works in the physical parameters; when its
progress stalls it goes on with each ``(c1, c2)`` pair as its mean and squared gap
(:class:`~pipeline.calibrate.activation_pairs.PairCoordinates`), where the fold ``c1 = c2`` of
the symmetric activation filter is a plain bound instead of a place Gauss-Newton cannot see.

This is the default calibration method (``calibration.optimiser.method: least_squares``, started
from the scaled model) and the refinement after AdamW (``method: adamw``,
``polish_iterations`` > 0).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from pipeline.calibrate.activation_pairs import PairCoordinates
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
    their exact Jacobian. :class:`~pipeline.calibrate.losses.Objective` is one.

    A problem may set ``cheap_residuals`` (true when residuals without derivatives cost a
    fraction of the Jacobian): the solver then evaluates plain residuals at trial points and the
    Jacobian at accepted points, on the full residual vector. Otherwise each evaluation computes
    both, and the solver works on their QR-reduced form (``n_free + 1`` rows).
    """

    @property
    def spec(self) -> Any: ...

    @property
    def n_tracking_residuals(self) -> int: ...

    def all_residuals(self, p: torch.Tensor) -> torch.Tensor: ...

    def residuals_and_jacobian(self, p: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]: ...


def qr_triangle(jacobian: np.ndarray, residuals: np.ndarray, /) -> np.ndarray:
    """``R`` of the QR factorisation of ``[jacobian residuals]`` (``(min(m, n+1), n+1)``).

    Tall matrices are factorised by row blocks, then the stacked blocks' triangles (TSQR): every
    step is a Householder QR, so ``R'R`` equals ``A'A`` to rounding as with one QR, and the
    blocks stay in cache (8.6 ms against 22 ms for the upper-limb problem's 4,692 x 97).
    """
    m, n = jacobian.shape
    rows = max(600, 4 * (n + 1))

    def triangle(first: int, last: int) -> np.ndarray:
        block = np.column_stack([jacobian[first:last], residuals[first:last]])
        return np.linalg.qr(block, mode="r")  # type: ignore[return-value]

    if m <= 2 * rows:
        return triangle(0, m)
    parts = [triangle(i, min(i + rows, m)) for i in range(0, m, rows)]
    return np.linalg.qr(np.vstack(parts), mode="r")  # type: ignore[return-value]


#: A stage has stalled when its last STALL_STEPS accepted steps lowered the loss by less than
#: STALL_GAIN of it in all (then the next stage's coordinates take over). 3 %: over the eight
#: elastic problems of `bench calibration` (seeds 0-3) and the two real walks of `bench ceinms`
#: it needed the fewest evaluations (280 and 356 in all; 1e-3: 289 and 424, 1e-2: 284 and 382),
#: at the same losses; the walks' filters sit near the fold, where the approach crawls at
#: 0.3-0.5 % per step.
STALL_STEPS = 5
STALL_GAIN = 3e-2


def solve_least_squares(objective: LeastSquaresProblem, p0: np.ndarray, /, *,
                        max_evaluations: int = 200,
                        tolerance: float = 1e-10, history: list[dict[str, float]] | None = None,
                        iteration_offset: int = 0, elapsed_offset_s: float = 0.0,
                        stall_gain: float = STALL_GAIN) -> LeastSquaresResult:
    """Minimise the objective's sum of squared residuals from ``p0`` inside the spec's bounds.

    Args:
        objective: the calibration objective.
        p0: physical start (moved just inside the bounds).
        max_evaluations: residual evaluations at most.
        tolerance: scipy's ``ftol``, ``xtol`` and ``gtol``.
        history: rows are appended to this list (one per residual evaluation).
        iteration_offset, elapsed_offset_s: added to the rows' iteration and elapsed time.
        stall_gain: the physical-coordinate stage ends when its last :data:`STALL_STEPS`
            accepted steps lowered the loss by less than this fraction (the (c1, c2) pairs'
            mean-and-gap stage goes on from there).
    """
    from scipy.optimize import least_squares

    spec = objective.spec
    start = time.perf_counter()
    # Stage 1 solves in the physical parameters; when its progress stalls (STALL_GAIN: on these
    # problems typically a (c1, c2) pair creeping towards the fold c1 = c2, but any slow phase
    # counts, final convergence included), stage 2 goes on from there with each pair as its
    # mean and squared gap (module activation_pairs), where the fold is a plain bound.
    pairs = PairCoordinates.of(spec)
    stages = [PairCoordinates.identity()] + ([pairs] if pairs.n_pairs else [])
    n_tracking = objective.n_tracking_residuals
    rows = [] if history is None else history
    first_row = len(rows)
    counts = {"fun": 0, "jac": 0}
    # Objectives whose residuals cost much less than their Jacobian keep the full residuals at
    # trial points (a rejected step then costs no Jacobian).
    reduce = not getattr(objective, "cheap_residuals", False)

    def record(r: np.ndarray) -> None:
        tracking = float(r[:n_tracking] @ r[:n_tracking])
        total = float(r @ r)
        counts["fun"] += 1
        rows.append({"iteration": iteration_offset + counts["fun"], "loss": total,
                     "tracking": tracking, "penalty": total - tracking, "lr": math.nan,
                     "elapsed_s": elapsed_offset_s + time.perf_counter() - start})

    p_start = np.asarray(p0, dtype=float)
    p, loss, stopped, tracking_jacobian = p_start, math.inf, "max_evaluations", None
    stage_log = []
    n_res = 0
    for stage, coords in enumerate(stages):
        budget = max_evaluations - counts["fun"]
        if budget <= 0:
            break
        if stage > 0:  # each pair keeps the order it has now (the prior may not be symmetric)
            coords = coords.oriented_as(p)
        lower, upper = coords.bounds(spec.lower, spec.upper)
        span = upper - lower
        x0 = np.clip(coords.to_solver(p), lower + 1e-9 * span, upper - 1e-9 * span)
        if stage == 0:
            with torch.no_grad():
                n_res = int(objective.all_residuals(torch.as_tensor(x0)).numel())
        cache: dict[str, Any] = {}
        fun, jac = _stage_functions(objective, coords, cache, record, counts, n_res=n_res,
                                    n_reduced=min(n_res, x0.size + 1), reduce=reduce,
                                    stall_gain=stall_gain if stage < len(stages) - 1 else None)
        try:
            result = least_squares(fun, x0, jac=jac, bounds=(lower, upper), method="trf",
                                   x_scale=span, tr_solver="exact", ftol=tolerance,
                                   xtol=tolerance, gtol=tolerance, max_nfev=budget)
            y, stage_loss = np.asarray(result.x, dtype=float), float(2.0 * result.cost)
            stage_stopped = {-1: "improper_input", 0: "max_evaluations", 1: "gtol", 2: "ftol",
                             3: "xtol", 4: "ftol_xtol"}.get(int(result.status),
                                                            str(result.status))
        except _Stalled:
            y, stage_loss, stage_stopped = cache["accepted_p"], cache["accepted_loss"], "stalled"
        if stage == 0:
            first_point = (x0, cache.get("first_jacobian_p"))
        stage_log.append(f"{'physical' if stage == 0 else '(c1, c2) as mean and gap'}: "
                         f"{stage_stopped}")
        if stage_loss <= loss:  # a later stage is kept only where it is no worse
            p, loss, stopped, tracking_jacobian = coords.to_model(y), stage_loss, stage_stopped, \
                None
            for key in ("", "accepted_"):
                if f"{key}p" in cache and np.array_equal(cache[f"{key}p"], y):
                    tracking_jacobian = cache[f"{key}jacobian_p"][:n_tracking]
        if stage_stopped != "stalled":
            break
    if stopped == "stalled" and counts["fun"] >= max_evaluations:
        stopped = "max_evaluations"  # no evaluations were left for the next stage
    reached = [row["loss"] for row in rows[first_row:]]
    loss0 = reached[0] if reached else math.inf
    if loss > loss0:  # never return a worse point than the start
        (p, first_jacobian), loss = first_point, loss0
        tracking_jacobian = None if first_jacobian is None else first_jacobian[:n_tracking]
    wall = time.perf_counter() - start
    log.info("least squares (trust-region reflective, exact Jacobian): loss %.6g -> %.6g, %d "
             "evaluations, %d Jacobians, %.2f s (stopped: %s; %s)", loss0, loss, counts["fun"],
             counts["jac"], wall, stopped, "; ".join(stage_log))
    return LeastSquaresResult(p, loss, counts["fun"], counts["jac"], wall, stopped, rows,
                              tracking_jacobian)


class _Stalled(Exception):
    """Raised inside scipy's solver to end a stage that has stalled."""


def _stage_functions(objective: LeastSquaresProblem, coords: PairCoordinates,
                     cache: dict[str, Any], record: Callable[[np.ndarray], None],
                     counts: dict[str, int], *, n_res: int,
                     n_reduced: int, reduce: bool, stall_gain: float | None,
                     ) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[..., np.ndarray]]:
    """scipy's ``fun`` and ``jac`` for one stage, in the stage's variables ``y``.

    ``record`` is called with the residuals of each counted evaluation; ``counts["jac"]``
    counts Jacobians. ``cache`` keeps the last Jacobian's ``y`` (``p``), the solver's Jacobian
    (``jacobian``), the one w.r.t. the physical parameters (``jacobian_p``) and its loss, and
    the same under ``accepted_`` for the last accepted point (where scipy asked for ``jac``),
    and the start's (the first accepted point's) Jacobian w.r.t. ``p`` as ``first_jacobian_p``.
    ``stall_gain``: raise :class:`_Stalled` at an accepted point after a stall (None: never).
    """
    accepted: list[float] = []

    def evaluate(y: np.ndarray, *, with_jacobian: bool, count: bool = True,
                 ) -> tuple[np.ndarray, Any]:
        """Residuals (capped where not finite) and, when asked and possible, the Jacobian;
        ``count``: a residual evaluation of the solver (a history row)."""
        cache.pop("p", None)
        jacobian = jacobian_p = None
        try:
            p_t = torch.as_tensor(coords.to_model(y), dtype=torch.float64)
            if with_jacobian:
                r_t, jacobian_p = objective.residuals_and_jacobian(p_t)
                if hasattr(jacobian_p, "toarray"):  # an objective may return a sparse matrix
                    jacobian_p = jacobian_p.toarray()
                jacobian = coords.jacobian(y, jacobian_p)
            else:
                with torch.no_grad():
                    r_t = objective.all_residuals(p_t)
            r = r_t.detach().cpu().numpy()
        except MODEL_FAILURES as exc:
            log.debug("least squares: model failed at a trial point (%s)", exc)
            cache["failure"] = str(exc)
            r, jacobian = np.full(n_res, 1e6), None
        if not np.all(np.isfinite(r)) or (jacobian is not None
                                          and not np.all(np.isfinite(jacobian))):
            cache.setdefault("failure", "non-finite residuals or Jacobian")
            r, jacobian = np.nan_to_num(r, nan=1e6, posinf=1e6, neginf=-1e6), None
        if count:
            record(r)
        if jacobian is not None:
            counts["jac"] += 1
            cache.update(p=y.copy(), jacobian=jacobian, jacobian_p=jacobian_p,
                         loss=float(r @ r))
        return r, jacobian

    def reduced_fun(y: np.ndarray) -> np.ndarray:
        """The residuals and Jacobian at ``y``, rotated by the QR factorisation of ``[J r]``.

        ``[J r] = Q [R q; 0 rho]`` gives ``||r||² = ||q||² + rho²``, ``J'J = R'R`` and
        ``J'r = R'q``, so ``(q, rho)`` with the Jacobian ``[R; 0]`` is the same least-squares
        problem in ``n + 1`` rows: trf's SVDs run on an ``(n+1) x n`` matrix instead of
        ``n_residuals x n``, and ``jac`` at an accepted point costs nothing more.
        """
        r, jacobian = evaluate(y, with_jacobian=True)
        if jacobian is None:  # the same cost as the (capped) residuals; never an accepted step
            reduced = np.zeros(n_reduced)
            reduced[-1] = float(np.linalg.norm(r))
            return reduced
        triangle = qr_triangle(jacobian, r)
        cache["reduced_jacobian"] = triangle[:, :-1]
        return triangle[:, -1]

    def full_fun(y: np.ndarray) -> np.ndarray:
        return evaluate(y, with_jacobian=False)[0]

    def jac(y: np.ndarray, *_: Any) -> np.ndarray:
        if "p" not in cache or not np.array_equal(cache["p"], y):
            evaluate(y, with_jacobian=True, count=False)  # fun counted these residuals
        if "p" not in cache:
            raise CalibrationError(describe(
                None, f"the model's Jacobian cannot be evaluated at a trial point "
                f"({cache.get('failure')})",
                "narrow calibration.bounds of the fibre and tendon slack lengths so fibres stay "
                "longer than their pennation thickness, or check the trials' MTU lengths"))
        for key in ("p", "jacobian", "jacobian_p", "loss"):
            cache[f"accepted_{key}"] = cache[key]
        cache.setdefault("first_jacobian_p", cache["jacobian_p"])
        accepted.append(cache["loss"])
        if (stall_gain is not None and len(accepted) > STALL_STEPS
                and accepted[-STALL_STEPS - 1] - accepted[-1]
                < stall_gain * accepted[-STALL_STEPS - 1]):
            raise _Stalled
        return cache["reduced_jacobian"] if reduce else cache["jacobian"]

    return (reduced_fun if reduce else full_fun), jac
