"""Differentiable synergy terms: gradcheck (float64) and analytic values of eq. 4 and eq. 5."""

from __future__ import annotations

import torch

from pipeline.synergies.terms import (
    excitation_loss,
    merge_excitations,
    reconstruct,
    synergy_penalty,
)

F64 = torch.float64


def test_reconstruction_gradcheck_wrt_primitives_and_weightings() -> None:
    gen = torch.Generator().manual_seed(0)
    weightings = torch.rand(5, 2, generator=gen, dtype=F64, requires_grad=True)
    primitives = torch.rand(3, 2, 7, generator=gen, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(reconstruct, (weightings, primitives))
    assert torch.autograd.gradgradcheck(reconstruct, (weightings, primitives))


def test_reconstruction_matches_matrix_product() -> None:
    weightings = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=F64)
    primitives = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], dtype=F64)
    expected = torch.tensor([[[1.0, 2.0], [2.0, 3.0]]], dtype=F64)
    torch.testing.assert_close(reconstruct(weightings, primitives), expected)


def test_synergy_loss_gradcheck_wrt_primitives_and_weightings() -> None:
    gen = torch.Generator().manual_seed(1)
    # values on both sides of the [0, 1] box so the penalties are active
    w = (torch.rand(4, 2, generator=gen, dtype=F64) * 1.4 - 0.2).requires_grad_()
    h = (torch.rand(2, 2, 6, generator=gen, dtype=F64) * 1.4 - 0.2).requires_grad_()
    recorded = torch.rand(2, 2, 6, generator=gen, dtype=F64)
    time_weights = torch.full((2, 6), 1.0 / 6.0, dtype=F64)

    def loss(w: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        e = reconstruct(w, h)
        return (excitation_loss(recorded, e[:, :2], e[:, 2:], reconstruction_weight=1.0,
                                synthesis_weight=0.1, time_weights=time_weights)
                + synergy_penalty(w, h, e[:, 2:], weight=10.0, time_weights=time_weights))

    assert torch.autograd.gradcheck(loss, (w, h))


def test_synergy_penalty_is_eq4() -> None:
    w = torch.tensor([[-0.5, 0.2], [1.0, 1.5]], dtype=F64)  # 0.25 + 0.25 below/above
    h = torch.tensor([[[0.5, 2.0]]], dtype=F64)  # 1.0 above at the second sample
    synth = torch.tensor([[[-0.1, 0.5]]], dtype=F64)  # 0.01 below at the first sample
    time_weights = torch.tensor([[0.5, 0.5]], dtype=F64)
    value = synergy_penalty(w, h, synth, weight=2.0, time_weights=time_weights)
    expected = 2.0 * (0.5 + 0.5 * (1.0 + 0.01))
    torch.testing.assert_close(value, torch.tensor(expected, dtype=F64))


def test_excitation_loss_is_eq5() -> None:
    recorded = torch.full((2, 2, 4), 0.5, dtype=F64)
    recon = torch.full((2, 2, 4), 0.3, dtype=F64)
    synth = torch.full((2, 1, 4), 0.2, dtype=F64)
    plain = excitation_loss(recorded, recon, synth, reconstruction_weight=2.0,
                            synthesis_weight=0.5)
    torch.testing.assert_close(plain, torch.tensor(2.0 * 0.04 + 0.5 * 0.04, dtype=F64))
    # sum over trials of the mean over time, like the moment-tracking term
    weighted = excitation_loss(recorded, recon, synth, reconstruction_weight=2.0,
                               synthesis_weight=0.5,
                               time_weights=torch.full((2, 4), 0.25, dtype=F64))
    torch.testing.assert_close(weighted, 2 * plain)
    empty = torch.zeros((2, 0, 4), dtype=F64)
    torch.testing.assert_close(excitation_loss(recorded, recon, empty, reconstruction_weight=1.0,
                                               synthesis_weight=1.0),
                               torch.tensor(0.04, dtype=F64))


def test_merge_uses_recorded_rows_and_synthesised_rest() -> None:
    recorded = torch.tensor([[[0.1, 0.2], [float("nan"), float("nan")]]], dtype=F64)
    synth = torch.tensor([[[0.9, 0.9], [0.3, 0.4]]], dtype=F64)
    merged = merge_excitations(recorded, synth, torch.tensor([True, False]))
    torch.testing.assert_close(merged, torch.tensor([[[0.1, 0.2], [0.3, 0.4]]], dtype=F64))
