"""Differentiable pieces of synergy-hybrid calibration (paper 002, eq. 5), torch.

Shapes: weightings ``(muscle, synergy)``; primitives ``(trial, synergy, time)``; excitations
``(trial, muscle, time)``. Everything runs in the dtype and on the device of its inputs.
"""

from __future__ import annotations

import torch

__all__ = ["box_penalty", "excitation_loss", "merge_excitations", "reconstruct"]


def reconstruct(weightings: torch.Tensor, primitives: torch.Tensor, /) -> torch.Tensor:
    """Synergy excitations ``W @ H``: ``(muscle, synergy)`` x ``(trial, synergy, time)``.

    Returns ``(trial, muscle, time)``; differentiable w.r.t. both factors.
    """
    if weightings.ndim != 2 or primitives.ndim != 3 or (
        weightings.shape[1] != primitives.shape[1]
    ):
        raise ValueError(f"weightings (muscle, synergy) {tuple(weightings.shape)} and primitives "
                         f"(trial, synergy, time) {tuple(primitives.shape)} do not match")
    return torch.einsum("ms,tsn->tmn", weightings, primitives)


def box_penalty(x: torch.Tensor, /, *, lower: float = 0.0, upper: float = 1.0,
                weight: float = 1.0) -> torch.Tensor:
    """Mean of paper 002's eq. 4 penalty: ``w (lower - x)²`` below, ``w (x - upper)²`` above."""
    below = torch.clamp(lower - x, min=0.0)
    above = torch.clamp(x - upper, min=0.0)
    return weight * torch.mean(below * below + above * above)


def merge_excitations(recorded: torch.Tensor, synthesised: torch.Tensor,
                      recorded_mask: torch.Tensor, /) -> torch.Tensor:
    """Excitations driving the model: recorded rows where ``recorded_mask``, synthesised elsewhere.

    ``recorded`` and ``synthesised`` are ``(trial, muscle, time)`` (NaN allowed in the rows that
    are not used); ``recorded_mask`` is ``(muscle,)`` bool.
    """
    mask = recorded_mask.to(device=recorded.device).view(1, -1, 1)
    return torch.where(mask, torch.nan_to_num(recorded, nan=0.0), synthesised)


def excitation_loss(
    recorded: torch.Tensor,
    reconstructed: torch.Tensor,
    synthesised: torch.Tensor,
    /,
    *,
    reconstruction_weight: float,
    synthesis_weight: float,
) -> torch.Tensor:
    """``F_exc`` of eq. 5 averaged over trials and time.

    ``w_e mean_r (e_rec - e_recon)² + w_s mean_s e_synth²`` where ``recorded`` and
    ``reconstructed`` are the recorded channels ``(trial, n_recorded, time)`` and ``synthesised``
    the unrecorded ones ``(trial, n_synthesised, time)`` (either may have zero rows).
    """
    zero = recorded.new_zeros(())
    tracking = (torch.mean((recorded - reconstructed) ** 2) if recorded.shape[1] else zero)
    synthesis = torch.mean(synthesised**2) if synthesised.shape[1] else zero
    return reconstruction_weight * tracking + synthesis_weight * synthesis
