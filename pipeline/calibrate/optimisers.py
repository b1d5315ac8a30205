"""First-order and quasi-Newton optimisers on one float64 tensor, without ``torch.optim``.

``torch.optim``'s optimisers import torch's compiler package (``torch._dynamo``, 1.5-2.5 s) the
first time one is constructed, which a short calibration job cannot afford. These are the two the
calibration uses:

* :class:`AdamW`: Adam with decoupled weight decay and bias-corrected moments (Loshchilov and
  Hutter 2019), the papers' optimiser, with an exponentially decaying learning rate;
* :func:`minimize_lbfgs`: limited-memory BFGS (two-loop recursion, initial Hessian scaled by
  ``s'y / y'y``) with a line search satisfying the strong Wolfe conditions (bracketing, then
  zooming with safeguarded cubic interpolation; Nocedal and Wright 2006, algorithms 3.5-3.6 and
  7.4).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["AdamW", "LbfgsResult", "minimize_lbfgs"]

#: ``x -> (loss, gradient)``; the gradient is a tensor shaped like ``x``.
LossAndGradient = Callable[[torch.Tensor], tuple[float, torch.Tensor]]


class AdamW:
    """AdamW on the tensor ``x`` (updated in place), learning rate decayed by ``lr_decay`` per step.

    Betas ``(0.9, 0.999)`` and ``eps = 1e-8`` as in the papers (torch's defaults).
    """

    def __init__(self, x: torch.Tensor, *, learning_rate: float, lr_decay: float = 1.0,
                 weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.x = x
        self.learning_rate = float(learning_rate)
        self.lr_decay = float(lr_decay)
        self.weight_decay = float(weight_decay)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = 0
        self.first = torch.zeros_like(x)
        self.second = torch.zeros_like(x)

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        """One update with ``grad`` (dLoss/dx at the current ``x``), then decay the rate."""
        self.steps += 1
        lr = self.learning_rate
        if self.weight_decay:
            self.x.mul_(1.0 - lr * self.weight_decay)
        self.first.lerp_(grad, 1.0 - self.beta1)
        self.second.mul_(self.beta2).addcmul_(grad, grad, value=1.0 - self.beta2)
        first_correction = 1.0 - self.beta1 ** self.steps
        second_correction = math.sqrt(1.0 - self.beta2 ** self.steps)
        denominator = (self.second.sqrt() / second_correction).add_(self.eps)
        self.x.addcdiv_(self.first, denominator, value=-lr / first_correction)
        self.learning_rate *= self.lr_decay


@dataclass(frozen=True)
class LbfgsResult:
    x: torch.Tensor  #: the last accepted iterate
    loss: float
    evaluations: int
    iterations: int
    stopped: str  #: max_evaluations | gradient | no_progress | line_search


def minimize_lbfgs(fun: LossAndGradient, x0: torch.Tensor, /, *, max_evaluations: int,
                   history_size: int = 50, tolerance_grad: float = 1e-12,
                   tolerance_change: float = 1e-16, max_line_search: int = 25,
                   metric: torch.Tensor | None = None) -> LbfgsResult:
    """Minimise ``fun`` from ``x0`` in at most ``max_evaluations`` calls of ``fun``.

    ``metric`` (positive, shaped like ``x0``) is a diagonal preconditioner: L-BFGS runs in the
    variables ``x / sqrt(metric)``, so it should be about the inverse of each variable's curvature
    (relative to the others). ``None`` is the identity.

    Stops when the largest gradient component is at most ``tolerance_grad``, when a step or the
    loss change is at most ``tolerance_change``, when the line search finds no acceptable step, or
    when the evaluations are spent. Exceptions raised by ``fun`` propagate (the caller keeps its
    own best iterate).
    """
    x = x0.detach().clone()
    loss, grad = fun(x)
    evaluations = 1
    steps: deque[torch.Tensor] = deque(maxlen=history_size)
    changes: deque[torch.Tensor] = deque(maxlen=history_size)
    curvatures: deque[float] = deque(maxlen=history_size)
    if float(grad.abs().max()) <= tolerance_grad:
        return LbfgsResult(x, loss, evaluations, 0, "gradient")
    metric = torch.ones_like(x) if metric is None else metric.to(x)
    direction = -metric * grad
    step_length = min(1.0, 1.0 / float((metric.sqrt() * grad).abs().sum()))
    iterations = 0
    stopped = "max_evaluations"
    while evaluations < max_evaluations:
        iterations += 1
        slope = float(grad @ direction)
        if slope > -tolerance_change:
            stopped = "no_progress"
            break
        search = _strong_wolfe(fun, x, direction, loss, grad, slope, step_length,
                               max_calls=min(max_line_search, max_evaluations - evaluations))
        evaluations += search.calls
        if search.step is None:
            stopped = "max_evaluations" if evaluations >= max_evaluations else "line_search"
            break
        step = search.step * direction
        change = search.grad - grad
        sy = float(change @ step)
        if sy > 1e-10:
            steps.append(step)
            changes.append(change)
            curvatures.append(1.0 / sy)
        previous = loss
        x = x + step
        loss, grad = search.loss, search.grad
        if float(grad.abs().max()) <= tolerance_grad:
            stopped = "gradient"
            break
        if float(step.abs().max()) <= tolerance_change or abs(loss - previous) < tolerance_change:
            stopped = "no_progress"
            break
        direction = -_two_loop(grad, steps, changes, curvatures, metric)
        step_length = 1.0
    return LbfgsResult(x, loss, evaluations, iterations, stopped)


def _two_loop(grad: torch.Tensor, steps: deque[torch.Tensor], changes: deque[torch.Tensor],
              curvatures: deque[float], metric: torch.Tensor) -> torch.Tensor:
    """The inverse-Hessian approximation applied to ``grad`` (L-BFGS two-loop recursion), from
    the initial approximation ``gamma * metric`` with ``gamma = s'y / y' metric y``."""
    q = grad.clone()
    alphas = []
    for s, y, rho in zip(reversed(steps), reversed(changes), reversed(curvatures), strict=True):
        alpha = rho * float(s @ q)
        q.add_(y, alpha=-alpha)
        alphas.append(alpha)
    if steps:
        gamma = float(steps[-1] @ changes[-1]) / float(changes[-1] @ (metric * changes[-1]))
        q.mul_(metric).mul_(gamma)
    else:
        q.mul_(metric)
    for s, y, rho, alpha in zip(steps, changes, curvatures, reversed(alphas), strict=True):
        beta = rho * float(y @ q)
        q.add_(s, alpha=alpha - beta)
    return q


@dataclass
class _Search:
    step: float | None  #: accepted step length (None: none found)
    loss: float
    grad: torch.Tensor
    calls: int


def _strong_wolfe(fun: LossAndGradient, x: torch.Tensor, direction: torch.Tensor, loss0: float,
                  grad0: torch.Tensor, slope0: float, step: float, *, max_calls: int,
                  c1: float = 1e-4, c2: float = 0.9) -> _Search:
    """A step length with sufficient decrease and a small directional derivative (strong Wolfe).

    Returns the best point seen (lowest loss with sufficient decrease) when ``max_calls`` runs
    out first; ``step=None`` when no evaluated point decreased the loss sufficiently.
    """
    calls = 0
    best = _Search(None, loss0, grad0, 0)

    def evaluate(t: float) -> tuple[float, torch.Tensor, float]:
        nonlocal calls
        calls += 1
        f, g = fun(x + t * direction)
        if math.isfinite(f) and f <= loss0 + c1 * t * slope0 and f < best.loss:
            best.step, best.loss, best.grad = t, f, g
        return f, g, float(g @ direction) if math.isfinite(f) else math.nan

    def done(t: float, f: float, g: torch.Tensor) -> _Search:
        return _Search(t, f, g, calls)

    previous = (0.0, loss0, slope0)
    bracket: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    while calls < max_calls:
        f, g, d = evaluate(step)
        if not math.isfinite(f):  # overshot into an invalid region: shrink towards the last point
            bracket = (previous, (step, math.inf, math.nan))
            break
        if f > loss0 + c1 * step * slope0 or (calls > 1 and f >= previous[1]):
            bracket = (previous, (step, f, d))
            break
        if abs(d) <= -c2 * slope0:
            return done(step, f, g)
        if d >= 0:
            bracket = ((step, f, d), previous)
            break
        low, high = step + 0.01 * (step - previous[0]), 10.0 * step
        previous, step = (step, f, d), _cubic_minimum(previous, (step, f, d), low, high)
    if bracket is None:
        return _Search(best.step, best.loss, best.grad, calls)
    lo, hi = bracket
    while calls < max_calls:
        left, right = sorted((lo[0], hi[0]))
        width = right - left
        if width <= 1e-12 * max(1.0, right):
            break
        if math.isfinite(hi[1]):
            trial = _cubic_minimum(lo, hi, left + 0.1 * width, right - 0.1 * width)
        else:
            trial = 0.5 * (lo[0] + hi[0])
        f, g, d = evaluate(trial)
        if not math.isfinite(f) or f > loss0 + c1 * trial * slope0 or f >= lo[1]:
            hi = (trial, f if math.isfinite(f) else math.inf, d)
            continue
        if abs(d) <= -c2 * slope0:
            return done(trial, f, g)
        if d * (hi[0] - lo[0]) >= 0:
            hi = lo
        lo = (trial, f, d)
    return _Search(best.step, best.loss, best.grad, calls)


def _cubic_minimum(a: tuple[float, float, float], b: tuple[float, float, float], low: float,
                   high: float) -> float:
    """Minimiser of the cubic through two points' values and slopes, clipped to ``[low, high]``
    (the midpoint when the cubic has no minimum there)."""
    (xa, fa, ga), (xb, fb, gb) = a, b
    if xa == xb:
        return 0.5 * (low + high)
    d1 = ga + gb - 3.0 * (fa - fb) / (xa - xb)
    radicand = d1 * d1 - ga * gb
    if radicand < 0.0:
        return 0.5 * (low + high)
    d2 = math.copysign(math.sqrt(radicand), xb - xa)
    denominator = gb - ga + 2.0 * d2
    if denominator == 0.0:
        return 0.5 * (low + high)
    m = xb - (xb - xa) * (gb + d2 - d1) / denominator
    if not math.isfinite(m):
        return 0.5 * (low + high)
    return min(max(m, low), high)
