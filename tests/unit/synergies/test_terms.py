"""Differentiable synergy terms: gradcheck (float64) and analytic values."""

from __future__ import annotations

import torch

from pipeline.synergies.terms import (
    box_penalty,
    excitation_loss,
    merge_excitations,
    reconstruct,
)


def test_reconstruction_gradcheck_wrt_primitives_and_weightings() -> None:
    gen = torch.Generator().manual_seed(0)
    weightings = torch.rand(5, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    primitives = torch.rand(3, 2, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(reconstruct, (weightings, primitives))
    assert torch.autograd.gradgradcheck(reconstruct, (weightings, primitives))


def test_reconstruction_matches_matrix_product() -> None:
    weightings = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    primitives = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], dtype=torch.float64)
    expected = torch.tensor([[[1.0, 2.0], [2.0, 3.0]]], dtype=torch.float64)
    torch.testing.assert_close(reconstruct(weightings, primitives), expected)


def test_loss_terms_gradcheck() -> None:
    gen = torch.Generator().manual_seed(1)
    w = (torch.rand(4, 2, generator=gen, dtype=torch.float64) * 1.4 - 0.2).requires_grad_()
    h = (torch.rand(2, 2, 6, generator=gen, dtype=torch.float64) * 1.4 - 0.2).requires_grad_()
    recorded = torch.rand(2, 2, 6, generator=gen, dtype=torch.float64)

    def loss(w: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        e = reconstruct(w, h)
        return (excitation_loss(recorded, e[:, :2], e[:, 2:], reconstruction_weight=1.0,
                                synthesis_weight=0.1)
                + box_penalty(w, weight=10.0) + box_penalty(h, weight=10.0))

    assert torch.autograd.gradcheck(loss, (w, h))


def test_box_penalty_is_eq4() -> None:
    x = torch.tensor([-0.5, 0.2, 1.0, 1.5], dtype=torch.float64)
    torch.testing.assert_close(box_penalty(x, weight=2.0),
                               torch.tensor(2.0 * (0.25 + 0.25) / 4, dtype=torch.float64))


def test_excitation_loss_is_eq5() -> None:
    recorded = torch.full((1, 2, 4), 0.5, dtype=torch.float64)
    recon = torch.full((1, 2, 4), 0.3, dtype=torch.float64)
    synth = torch.full((1, 1, 4), 0.2, dtype=torch.float64)
    value = excitation_loss(recorded, recon, synth, reconstruction_weight=2.0,
                            synthesis_weight=0.5)
    torch.testing.assert_close(value, torch.tensor(2.0 * 0.04 + 0.5 * 0.04, dtype=torch.float64))
    empty = torch.zeros((1, 0, 4), dtype=torch.float64)
    torch.testing.assert_close(excitation_loss(recorded, recon, empty, reconstruction_weight=1.0,
                                               synthesis_weight=1.0),
                               torch.tensor(0.04, dtype=torch.float64))


def test_merge_uses_recorded_rows_and_synthesised_rest() -> None:
    recorded = torch.tensor([[[0.1, 0.2], [float("nan"), float("nan")]]], dtype=torch.float64)
    synth = torch.tensor([[[0.9, 0.9], [0.3, 0.4]]], dtype=torch.float64)
    merged = merge_excitations(recorded, synth, torch.tensor([True, False]))
    torch.testing.assert_close(merged, torch.tensor([[[0.1, 0.2], [0.3, 0.4]]],
                                                    dtype=torch.float64))
