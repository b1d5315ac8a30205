"""Activation dynamics: the CEINMS recursive filter and the exponential shape factor.

Neural activation (Lloyd and Besier 2003, as in CEINMS and paper 002):

    u_i = alpha e_{i-d} - beta1 u_{i-1} - beta2 u_{i-2},
    beta1 = C1 + C2,  beta2 = C1 C2,  alpha = 1 + beta1 + beta2,

with ``d`` the electromechanical delay in samples. Muscle activation:

    a = (exp(A u) - 1) / (exp(A) - 1),   A in (-3, 0),

whose removable singularity at ``A = 0`` (limit ``a = u``) is evaluated with a series.

On the CPU the recursion runs as written (:mod:`pipeline.nms._iir`, a compiled loop with exact
forward- and reverse-mode derivatives). On other devices it is applied without a loop over samples:
the recursion factors into two first-order filters with poles ``-C1`` and ``-C2``, so its output is
the excitation convolved with ``alpha (-C1)^n * (-C2)^n``, done as one zero-padded FFT product (no
circular wrap-around), differentiable through torch's FFT autograd. Both are exact (a test keeps
them equal).

Initial conditions: the delayed excitation ``e_{i-d}`` for ``i < d`` is the EMG recorded before
the window (``before``, the samples just before the first one) when the recording has it, and the
first excitation sample ``e_0`` where it does not. The filter starts in steady state with the first
delayed sample (``u_{-1} = u_{-2} = e_{-d}``). The filter's gain at zero frequency is one, so a
constant excitation gives the same constant neural activation.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from pipeline.nms._iir import RecursiveFilter
from pipeline.nms.curves import Array, array_module

__all__ = ["activation", "delay_samples", "muscle_activation", "neural_activation"]

_SERIES_LIMIT = 1e-3


def delay_samples(*, emd_s: float, dt_s: float) -> int:
    """Electromechanical delay in whole samples: ``round(emd_s / dt_s)``."""
    if dt_s <= 0.0:
        raise ValueError(f"dt_s must be > 0, got {dt_s}")
    if emd_s < 0.0:
        raise ValueError(f"emd_s must be >= 0, got {emd_s}")
    return round(emd_s / dt_s)


def _delayed(excitation: torch.Tensor, delay: int,
             before: torch.Tensor | None = None) -> torch.Tensor:
    """Shift along time by ``delay`` samples. The samples before the start come from ``before``
    (``(..., muscle, n_before)``, the last one just before the first excitation sample) where it
    reaches back far enough; earlier ones repeat the earliest sample known."""
    if delay == 0:
        return excitation
    n_time = excitation.shape[-1]
    if before is None or before.shape[-1] == 0:
        known = excitation
    else:  # NaN: not recorded there (hold the first excitation sample instead)
        before = before.expand(*excitation.shape[:-1], before.shape[-1])
        held = torch.where(torch.isnan(before), excitation[..., :1].expand_as(before), before)
        known = torch.cat([held, excitation], dim=-1)
    n_before = known.shape[-1] - n_time
    if delay > n_before:
        pad = known[..., :1].expand(*excitation.shape[:-1], delay - n_before)
        known = torch.cat([pad, known], dim=-1)
        n_before = delay
    start = n_before - delay
    return known[..., start:start + n_time]


def _powers(base: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """``base ** steps`` for whole ``steps >= 0``, as ``sign * exp(steps log|base|)``: forward-mode
    autodiff of a tensor power runs through a Python decomposition that imports torch's compiler
    (seconds of start-up); this form has native forward and reverse derivatives."""
    magnitude = torch.exp(steps * torch.log(base.abs()))
    odd = torch.remainder(steps, 2.0) == 1.0
    return torch.where(odd & (base < 0.0), -magnitude, magnitude)


def neural_activation(
    excitation: torch.Tensor,
    c1: torch.Tensor,
    c2: torch.Tensor,
    *,
    dt_s: float,
    emd_s: float,
    before: torch.Tensor | None = None,
) -> torch.Tensor:
    """Apply the CEINMS second-order recursive filter with electromechanical delay.

    Args:
        excitation: ``(..., muscle, time)`` excitations (normally in [0, 1]).
        c1, c2: ``(muscle,)`` filter coefficients (CEINMS bounds [-0.95, -0.05]; the filter is
            stable for ``|C| < 1``).
        dt_s: sample interval in seconds.
        emd_s: electromechanical delay in seconds, rounded to whole samples.
        before: ``(..., muscle, n_before)`` excitations recorded just before the window, on the
            same time step (None or empty: none recorded).

    Returns:
        ``(..., muscle, time)`` neural activation ``u``.
    """
    delay = delay_samples(emd_s=emd_s, dt_s=dt_s)
    n_time = excitation.shape[-1]
    delayed = _delayed(excitation, delay, before)
    initial = delayed[..., :1]
    deviation = delayed - initial
    if excitation.device.type == "cpu":
        shape = deviation.shape
        rows = [c.expand(shape[:-1]).reshape(-1) for c in (1.0 + c1 + c2 + c1 * c2, c1 + c2,
                                                            c1 * c2)]
        filtered = RecursiveFilter.apply(deviation.reshape(-1, shape[-1]), *rows)
        return initial + filtered.reshape(shape)
    n_fft = 3 * n_time
    steps = torch.arange(n_time, dtype=excitation.dtype, device=excitation.device)
    pole1 = (-c1).unsqueeze(-1)
    pole2 = (-c2).unsqueeze(-1)
    alpha = (1.0 + c1 + c2 + c1 * c2).unsqueeze(-1)
    spectrum = (
        torch.fft.rfft(deviation, n=n_fft)
        * torch.fft.rfft(alpha * _powers(pole1, steps), n=n_fft)
        * torch.fft.rfft(_powers(pole2, steps), n=n_fft)
    )
    return initial + torch.fft.irfft(spectrum, n=n_fft)[..., :n_time]


def muscle_activation(neural: torch.Tensor, shape_factor: torch.Tensor) -> torch.Tensor:
    """Exponential non-linearity ``a = (exp(A u) - 1) / (exp(A) - 1)``.

    Written as ``u * phi(A u) / phi(A)`` with ``phi(x) = expm1(x) / x`` so that ``A -> 0`` gives
    ``a = u`` smoothly (series for ``|x| < 1e-3``, truncation error below 1e-17). One fused
    autograd node with closed-form derivatives (:class:`_MuscleActivation`):
    ``da/du = exp(A u) / phi(A)`` and ``da/dA = (u^2 phi'(A u) - a phi'(A)) / phi(A)``.

    Args:
        neural: ``(..., muscle, time)`` neural activation ``u``.
        shape_factor: ``(muscle,)`` shape factor ``A`` (CEINMS range (-3, 0)).

    Returns:
        ``(..., muscle, time)`` activation ``a`` (in [0, 1] when ``u`` is).
    """
    return _MuscleActivation.apply(neural, shape_factor)


def _phi_and_slope(x: Array) -> tuple[Array, Array, Array]:
    """``(phi(x), phi'(x), exp(x))`` with ``phi(x) = expm1(x) / x`` and
    ``phi'(x) = (exp(x) - phi(x)) / x``, by their series where ``|x| < 1e-3`` (a tensor or a
    numpy array)."""
    xp = array_module(x)
    small = abs(x) < _SERIES_LIMIT
    safe_x = xp.where(small, xp.ones_like(x), x)
    expm1 = xp.expm1(x)
    exact = expm1 / safe_x
    series = 1.0 + x * (1.0 / 2.0 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x / 120.0)))
    phi = xp.where(small, series, exact)
    slope_series = 1.0 / 2.0 + x * (1.0 / 3.0 + x * (1.0 / 8.0 + x * (1.0 / 30.0 + x / 144.0)))
    slope = xp.where(small, slope_series, (expm1 + 1.0 - phi) / safe_x)
    return phi, slope, expm1 + 1.0


def muscle_activation_and_partials(neural: Array, shape_factor: Array,
                                   ) -> tuple[Array, Array, Array]:
    """:func:`muscle_activation` and its elementwise partials ``(a, da/du, da/dA)``, outside
    autograd (:class:`_MuscleActivation` has the formulas); tensors or numpy arrays."""
    xp = array_module(neural)
    shape = shape_factor[..., None]
    if bool((abs(shape_factor) >= _SERIES_LIMIT).all()):
        exp_minus_one = xp.expm1(shape * neural)
        denominator = xp.expm1(shape)
        inverse = 1.0 / denominator
        act = exp_minus_one * inverse
        exp = exp_minus_one + 1.0
        return (act, exp * (shape * inverse),
                (neural * exp - act * (denominator + 1.0)) * inverse)
    phi, slope, exp = _phi_and_slope(shape * neural)
    phi_shape, slope_shape, _ = _phi_and_slope(shape)
    inverse = 1.0 / phi_shape
    act = neural * phi * inverse
    return act, exp * inverse, (neural * neural * slope - act * slope_shape) * inverse


class _MuscleActivation(torch.autograd.Function):
    """``(u (..., muscle, time), A (muscle,)) -> a``; closed-form reverse and forward rules.

    With every ``|A| >= 1e-3`` the forms without ``phi`` are exact and cheaper:
    ``a = expm1(A u) / expm1(A)``, ``da/du = A exp(A u) / expm1(A)``,
    ``da/dA = (u exp(A u) - a exp(A)) / expm1(A)``; otherwise the series forms above."""

    @staticmethod
    def forward(ctx, neural, shape_factor):
        act, *partials = muscle_activation_and_partials(neural, shape_factor)
        ctx.partials = tuple(partials)
        ctx.shapes = (neural.shape, shape_factor.unsqueeze(-1).shape)
        return act

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        by_neural, by_shape = ctx.partials
        grad_neural = grad_shape = None
        if ctx.needs_input_grad[0]:
            grad_neural = (grad * by_neural).sum_to_size(ctx.shapes[0])
        if ctx.needs_input_grad[1]:
            grad_shape = (grad * by_shape).sum_to_size(ctx.shapes[1]).squeeze(-1)
        return grad_neural, grad_shape

    @staticmethod
    def jvp(ctx, t_neural, t_shape):
        by_neural, by_shape = ctx.partials
        total = torch.zeros_like(by_neural)
        if t_neural is not None:
            total = total + by_neural * t_neural
        if t_shape is not None:
            total = total + by_shape * t_shape.unsqueeze(-1)
        return total


def activation(
    excitation: torch.Tensor,
    c1: torch.Tensor,
    c2: torch.Tensor,
    shape_factor: torch.Tensor,
    *,
    dt_s: float,
    emd_s: float,
    before: torch.Tensor | None = None,
) -> torch.Tensor:
    """Excitation ``(..., muscle, time)`` to muscle activation of the same shape (``before``:
    see :func:`neural_activation`)."""
    neural = neural_activation(excitation, c1, c2, dt_s=dt_s, emd_s=emd_s, before=before)
    return muscle_activation(neural, shape_factor)
