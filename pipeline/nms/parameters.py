"""Unconstrained <-> bounded parameter mapping for calibration.

Calibration optimises unconstrained tensors ``z``; the physical value is
``lower + (upper - lower) * sigmoid(z)``, smooth and strictly inside ``(lower, upper)``. Bounds are
absolute, or relative to the scaled model's nominal values via :func:`relative_bounds`.
"""

from __future__ import annotations

import torch

__all__ = ["from_unconstrained", "relative_bounds", "to_unconstrained"]


def _check_bounds(lower: torch.Tensor, upper: torch.Tensor) -> None:
    if bool(torch.any(upper <= lower)):
        raise ValueError("every upper bound must exceed its lower bound")


def from_unconstrained(
    unconstrained: torch.Tensor, *, lower: torch.Tensor | float, upper: torch.Tensor | float
) -> torch.Tensor:
    """Map ``z`` (any real) into ``(lower, upper)``: ``lower + (upper - lower) sigmoid(z)``.

    Shapes broadcast; differentiable w.r.t. ``z`` (and the bounds).
    """
    lower_t = torch.as_tensor(lower, dtype=unconstrained.dtype, device=unconstrained.device)
    upper_t = torch.as_tensor(upper, dtype=unconstrained.dtype, device=unconstrained.device)
    _check_bounds(lower_t, upper_t)
    return lower_t + (upper_t - lower_t) * torch.sigmoid(unconstrained)


def to_unconstrained(
    value: torch.Tensor, *, lower: torch.Tensor | float, upper: torch.Tensor | float,
    margin: float = 1e-9,
) -> torch.Tensor:
    """Inverse of :func:`from_unconstrained` (logit of the position inside the bounds).

    A value on or outside a bound is first moved ``margin`` (relative to the range) inside it, so
    the result stays finite.
    """
    lower_t = torch.as_tensor(lower, dtype=value.dtype, device=value.device)
    upper_t = torch.as_tensor(upper, dtype=value.dtype, device=value.device)
    _check_bounds(lower_t, upper_t)
    fraction = ((value - lower_t) / (upper_t - lower_t)).clamp(margin, 1.0 - margin)
    return torch.logit(fraction)


def relative_bounds(
    nominal: torch.Tensor, *, lower_factor: float, upper_factor: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds ``(lower_factor * nominal, upper_factor * nominal)`` for positive nominal values."""
    if not 0.0 <= lower_factor < upper_factor:
        raise ValueError(f"need 0 <= lower_factor < upper_factor, got {lower_factor}, "
                         f"{upper_factor}")
    return nominal * lower_factor, nominal * upper_factor
